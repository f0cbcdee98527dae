/*
 * ready_halt.S: prints "ready" on COM1, then halts with interrupts off, as a
 * guest that does not listen to ACPI would sit. Real mode.
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
