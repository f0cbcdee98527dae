/*
 * reset_cf9.S: resets the machine through the reset control register (port
 * 0xCF9) the way Linux's reboot=pci does: SYS_RST first, then SYS_RST |
 * RST_CPU. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	movw $0xcf9, %dx
	movb $0x02, %al
	outb %al, %dx
	movb $0x06, %al
	outb %al, %dx
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
