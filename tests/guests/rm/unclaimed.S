/*
 * unclaimed.S: reads port 0xE0, which no device claims, and ends the VM
 * through the debug-exit port with the byte it read. A floating bus reads as
 * 0xFF, so the exit status is (0xFF << 1 | 1) & 0xFF = 0xFF; with
 * strict_io the read itself ends the VM with an error. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	inb $0xe0, %al
	outb %al, $0xf4
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
