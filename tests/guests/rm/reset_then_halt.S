/*
 * reset_then_halt.S: resets the machine through 0xCF9 five times, counting
 * boots in CMOS byte 0x41 (kept across a VM reset), each boot after 20,000
 * reads of port 0x80 (exits to dhyve); the sixth boot halts with interrupts
 * off, which must end the VM with status 2 (halt). Real mode; used with
 * vm.on_reset = "restart".
 */
	.code16
	.text
	.globl _start
_start:
	movb $0x41, %al
	outb %al, $0x70
	inb $0x71, %al
	cmpb $5, %al
	jae halt
	incb %al
	movb %al, %bl
	movb $0x41, %al
	outb %al, $0x70
	movb %bl, %al
	outb %al, $0x71
	movl $20000, %ecx
1:	inb $0x80, %al
	loopl 1b
	movw $0xcf9, %dx
	movb $0x02, %al
	outb %al, %dx
	movb $0x06, %al
	outb %al, %dx
halt:	cli
	hlt
	jmp halt
	.section .note.GNU-stack, "", @progbits
