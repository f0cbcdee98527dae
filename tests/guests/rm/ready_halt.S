/*
 * ready_halt.S: prints "ready" on COM1, then halts with interrupts disabled
 * (cli; hlt): only an NMI could wake the machine, so dhyve ends the VM with
 * bhyve's "halt" (exit status 2). Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	movw $msg, %si
	call puts
halt:
	cli
	hlt
	jmp halt
msg:
	.asciz "ready\n"

#include "puts.inc"

	.section .note.GNU-stack, "", @progbits
