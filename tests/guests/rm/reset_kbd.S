/*
 * reset_kbd.S: resets the machine through the 8042 keyboard controller:
 * command 0xFE (pulse the CPU reset line) to port 0x64. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	movb $0xfe, %al
	outb %al, $0x64
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
