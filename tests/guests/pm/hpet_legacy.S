/*
 * hpet_legacy.S: turns on the HPET's LegacyReplacement (GEN_CONF = ENABLE |
 * LEG_RT, at 0xFED00010; IA-PC HPET 1.0a, 2.3.5), which makes dhyve
 * disconnect the RTC's IRQ 8 and KVM's PIT IRQ 0, then turns it off again
 * and ends the VM through the debug-exit port with 0x10 (exit status 33).
 * Flat protected mode, linked and loaded at 0x10000.
 */
	.code32
	.text
	.globl _start
_start:
	movl $3, 0xfed00010
	movl 0xfed00010, %eax
	movl $0, 0xfed00010
	cmpl $3, %eax
	jne fail
	movb $0x10, %al
	outb %al, $0xf4
fail:
	movb $0, %al
	outb %al, $0xf4
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
