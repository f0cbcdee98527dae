/*
 * pwrbtn.S: an ACPI-aware guest's view of the power button, which dhyve's
 * tables describe as a control-method button on GPE 0 (\_SB.PWRB, \_GPE._E00).
 * It enables GPE 0 (GPE0_EN, port 0x40E; ACPI 6.5, 4.8.4.1), prints "ready"
 * on COM1, waits for GPE0_STS bit 0 (port 0x40C), clears it (write 1) and
 * ends the VM through the debug-exit port with 0x42 (exit status 0x85).
 * Real mode, interrupts off: it polls instead of taking the SCI.
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
	movw $0x40c, %dx
1:	inb %dx, %al
	testb $0x01, %al
	jz 1b
	movb $0x01, %al
	outb %al, %dx
	movb $0x42, %al
	outb %al, $0xf4
halt:
	cli
	hlt
	jmp halt

msg:
	.asciz "ready\n"

#include "puts.inc"

	.section .note.GNU-stack, "", @progbits
