/*
 * burst.S: writes COM1 output in 16-byte bursts, as a driver with the FIFOs
 * on does: wait for LSR.THRE (the transmit FIFO is empty), then 16 bytes
 * "0123456789abcde\n". After each burst it counts it in the dword at
 * DS:0x8000 (guest-physical 0x18000). For ever. Real mode, loaded at
 * 0x10000, CS = DS = 0x1000.
 */
	.code16
	.text
	.globl _start
_start:
	movl $0, 0x8000
	movw $0x3fa, %dx            /* FCR: FIFOs on, both cleared */
	movb $0x07, %al
	outb %al, %dx
1:	movw $0x3fd, %dx
2:	inb %dx, %al
	testb $0x20, %al
	jz 2b
	movw $0x3f8, %dx
	movw $line, %si
	movw $16, %cx
3:	lodsb
	outb %al, %dx
	loop 3b
	incl 0x8000
	jmp 1b
line:
	.ascii "0123456789abcde\n"

	.section .note.GNU-stack, "", @progbits
