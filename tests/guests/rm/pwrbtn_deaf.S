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
	call puts
halt:
	sti
	hlt
	jmp halt
msg:
	.asciz "ready\n"

#include "puts.inc"

	.section .note.GNU-stack, "", @progbits
