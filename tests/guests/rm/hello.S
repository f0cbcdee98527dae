/*
 * hello.S: prints a line on COM1 (polling LSR.THRE before each byte, as a
 * driver must) and ends the VM through the debug-exit port with 0x10
 * (exit status 0x21 = 33). Real mode, loaded at 0x10000, CS = DS = 0x1000.
 */
	.code16
	.text
	.globl _start
_start:
	movw $msg, %si
	call puts
	movw $0xf4, %dx
	movb $0x10, %al
	outb %al, %dx
1:	cli
	hlt
	jmp 1b
msg:
	.asciz "hello from real mode\n"

#include "puts.inc"

	.section .note.GNU-stack, "", @progbits
