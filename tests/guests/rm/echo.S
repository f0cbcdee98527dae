/*
 * echo.S: echoes COM1 input back to COM1 until it reads a '.', then ends the
 * VM through the debug-exit port with the number of bytes it read (so the
 * exit status is (n << 1) | 1). Polls LSR.DR and LSR.THRE. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	xorw %cx, %cx
read:
	movw $0x3fd, %dx        /* LSR */
1:	inb %dx, %al
	testb $0x01, %al        /* DR: data ready */
	jz 1b
	movw $0x3f8, %dx        /* RBR */
	inb %dx, %al
	incw %cx
	movb %al, %bl
	movw $0x3fd, %dx
2:	inb %dx, %al
	testb $0x20, %al        /* THRE */
	jz 2b
	movw $0x3f8, %dx
	movb %bl, %al
	outb %al, %dx
	cmpb $'.', %bl
	jne read
	movw $0xf4, %dx
	movb %cl, %al
	outb %al, %dx
3:	cli
	hlt
	jmp 3b

	.section .note.GNU-stack, "", @progbits
