/*
 * port61.S: sets the PIT channel 2 gate through port 0x61 (NMI status and
 * control register, bit 0) and reads it back, then ends the VM through the
 * debug-exit port with 0x10 | (bit 0 as read). KVM serves port 0x61 for its
 * in-kernel PIT (KVM_PIT_SPEAKER_DUMMY), so the expected exit status is
 * ((0x10 | 1) << 1) | 1 = 0x23, even with strict_io. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	inb $0x61, %al
	orb $0x01, %al
	outb %al, $0x61
	inb $0x61, %al
	andb $0x01, %al
	orb $0x10, %al
	outb %al, $0xf4
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
