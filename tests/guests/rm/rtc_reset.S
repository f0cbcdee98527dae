/*
 * rtc_reset.S: proves that the RTC keeps its time and NVRAM across a VM
 * reset (dhyve's vm.on_reset = "restart").
 *
 * First boot (CMOS byte 0x40 is not 0x5A): set the RTC to 2001-02-03
 * 04:05:06 (BCD, 24 h, with SET held while writing; MC146818A datasheet,
 * register B bit 7), mark CMOS byte 0x40 with 0x5A, reset through 0xCF9.
 * Second boot: the mark is there; read the year register and end the VM
 * through the debug-exit port with 0x40 | year (0x41 for 2001: exit status
 * 0x83). Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	movb $0x40, %al
	call cmos_read
	cmpb $0x5a, %al
	je second

	movb $0x0b, %ah          /* register B: SET | 24h, BCD */
	movb $0x82, %al
	call cmos_write
	movw $0x0006, %ax        /* seconds */
	call cmos_write
	movw $0x0205, %ax        /* minutes */
	call cmos_write
	movw $0x0404, %ax        /* hours */
	call cmos_write
	movw $0x0703, %ax        /* day of month */
	call cmos_write
	movw $0x0802, %ax        /* month */
	call cmos_write
	movw $0x0901, %ax        /* year */
	call cmos_write
	movw $0x3220, %ax        /* century */
	call cmos_write
	movw $0x0b02, %ax        /* register B: clear SET, the clock runs */
	call cmos_write
	movw $0x405a, %ax        /* NVRAM mark */
	call cmos_write
	movw $0xcf9, %dx
	movb $0x06, %al
	outb %al, %dx
	jmp halt

second:
	movb $0x09, %al
	call cmos_read
	orb $0x40, %al
	outb %al, $0xf4
halt:
	cli
	hlt
	jmp halt

/* cmos_write: register AH <- value AL */
cmos_write:
	xchgb %al, %ah
	outb %al, $0x70
	xchgb %al, %ah
	outb %al, $0x71
	ret

/* cmos_read: AL <- register AL */
cmos_read:
	outb %al, $0x70
	inb $0x71, %al
	ret

	.section .note.GNU-stack, "", @progbits
