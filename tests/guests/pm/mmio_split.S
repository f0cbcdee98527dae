/*
 * mmio_split.S: a 4-byte read that starts on the last byte of the page below
 * the HPET (0xFECFFFFF, nothing there: a floating bus reads 0xFF) and ends
 * on the first 3 bytes of the HPET's GCAP_ID (0xFED00000). KVM splits it at
 * the page boundary into MMIO exits of 1 and 3 bytes. The result must be
 * 0xFF, then GCAP_ID's low 3 bytes (as an aligned read gives them). Then
 * the same across the top of the HPET page, 0xFED00FFE, which must read
 * all ones. Ends through the debug-exit port with 0x11 (exit status 35),
 * or 0 on a wrong value. Flat protected mode, linked and loaded at 0x10000.
 */
	.code32
	.text
	.globl _start
_start:
	movl 0xfed00000, %ebx     /* GCAP_ID bits 31:0, aligned */
	shll $8, %ebx
	movb $0xff, %bl
	movl $0xfecfffff, %esi
	movl (%esi), %eax          /* 1 + 3 bytes */
	cmpl %ebx, %eax
	jne fail
	movl $0xfed00ffe, %esi
	movl (%esi), %eax          /* 2 + 2 bytes, nothing there */
	cmpl $0xffffffff, %eax
	jne fail
	movb $0x11, %al
	outb %al, $0xf4
fail:
	movb $0, %al
	outb %al, $0xf4
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
