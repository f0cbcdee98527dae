/*
 * pwrbtn.S: an ACPI-aware guest's view of the power button. It enables the
 * power button event (PWRBTN_EN in PM1_EN, port 0x402; ACPI 6.5, 4.8.4.1),
 * prints "ready" on COM1, waits for PWRBTN_STS (PM1_STS bit 8, port 0x400),
 * clears it (write 1) and ends the VM through the debug-exit port with 0x42
 * (exit status 0x85). Real mode, interrupts off: it polls.
 */
	.code16
	.text
	.globl _start
_start:
	movw $0x402, %dx
	movw $0x0100, %ax
	outw %ax, %dx
	movw $msg, %si
	call puts
	movw $0x400, %dx
1:	inw %dx, %ax
	testw $0x0100, %ax
	jz 1b
	movw $0x0100, %ax
	outw %ax, %dx
	movb $0x42, %al
	outb %al, $0xf4
halt:
	cli
	hlt
	jmp halt

/* puts: print the NUL-terminated string at DS:SI on COM1 */
puts:
	lodsb
	testb %al, %al
	jz 2f
	movb %al, %bl
	movw $0x3fd, %dx
3:	inb %dx, %al
	testb $0x20, %al
	jz 3b
	movw $0x3f8, %dx
	movb %bl, %al
	outb %al, %dx
	jmp puts
2:	ret
msg:
	.asciz "ready\n"

	.section .note.GNU-stack, "", @progbits
