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
