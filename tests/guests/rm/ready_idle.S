/*
 * ready_idle.S: prints "ready" on COM1, then idles with interrupts enabled
 * (sti; hlt), as an OS idles; nothing interrupts it here, so it waits for
 * dhyve to stop it. It does not listen to the ACPI power button. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
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
