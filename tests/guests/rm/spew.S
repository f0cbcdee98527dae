/*
 * spew.S: writes "x" to COM1 for ever, polling LSR.THRE before each byte as
 * a driver must. With a console nobody reads, the output backs up and the
 * guest waits on THRE: dhyve must stay responsive. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	movw $0x3fd, %dx
1:	inb %dx, %al
	testb $0x20, %al
	jz 1b
	movw $0x3f8, %dx
	movb $'x', %al
	outb %al, %dx
	movw $0x3fd, %dx
	jmp 1b

	.section .note.GNU-stack, "", @progbits
