/*
 * pwrbtn_deaf.S: enables the ACPI power button's GPE (GPE0_EN bit 0, port
 * 0x40E), prints "ready" on COM1 and idles (sti; hlt) without ever looking
 * at it: a guest whose OS hangs before handling the button. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	movw $0x40e, %dx
	movb $0x01, %al
	outb %al, %dx
	movw $msg, %si
1:	lodsb
	testb %al, %al
	jz halt
	movb %al, %bl
	movw $0x3fd, %dx
2:	inb %dx, %al
	testb $0x20, %al
	jz 2b
	movw $0x3f8, %dx
	movb %bl, %al
	outb %al, %dx
	jmp 1b
halt:
	sti
	hlt
	jmp halt
msg:
	.asciz "ready\n"

	.section .note.GNU-stack, "", @progbits
