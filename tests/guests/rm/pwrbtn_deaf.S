/*
 * pwrbtn_deaf.S: enables the ACPI power button event (PWRBTN_EN, port
 * 0x402), prints "ready" on COM1 and idles (sti; hlt) without ever looking
 * at it: a guest whose OS hangs before handling the button. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	movw $0x402, %dx
	movw $0x0100, %ax
	outw %ax, %dx
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
