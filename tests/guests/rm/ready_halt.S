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
	cli
	hlt
	jmp halt
msg:
	.asciz "ready\n"

	.section .note.GNU-stack, "", @progbits
