/*
 * reboot_loop.S: reboots the machine 20 times while the RTC raises periodic
 * interrupts at 8192 Hz, then ends through the debug-exit port with the
 * count. The count lives in CMOS byte 0x41, which survives a VM reset.
 * Each boot: count++, set the RTC's periodic rate to 8192 Hz (register A
 * RS = 3) with PIE (register B bit 6), read register C 200 times (each read
 * clears the flags, so the device keeps its timer busy), reset via 0xCF9.
 * Real mode; used with vm.on_reset = "restart". Exit status: (20 << 1) | 1.
 */
	.code16
	.text
	.globl _start
_start:
	movb $0x41, %al
	outb %al, $0x70
	inb $0x71, %al
	incb %al
	movb %al, %bl
	movb $0x41, %al
	outb %al, $0x70
	movb %bl, %al
	outb %al, $0x71
	cmpb $20, %bl
	jae done

	movb $0x0a, %al          /* register A: divider on, RS = 3 (8192 Hz) */
	outb %al, $0x70
	movb $0x23, %al
	outb %al, $0x71
	movb $0x0b, %al          /* register B: PIE, 24 h, BCD */
	outb %al, $0x70
	movb $0x42, %al
	outb %al, $0x71
	movw $200, %cx
1:	movb $0x0c, %al          /* register C: read clears the flags */
	outb %al, $0x70
	inb $0x71, %al
	loop 1b

	movw $0xcf9, %dx
	movb $0x06, %al
	outb %al, %dx
	jmp halt
done:
	movb %bl, %al
	outb %al, $0xf4
halt:
	cli
	hlt
	jmp halt

	.section .note.GNU-stack, "", @progbits
