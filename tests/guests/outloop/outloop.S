/*
 * outloop.S: a flat 16-bit real-mode guest for the port I/O exit benchmark.
 *
 * Load the binary at guest physical 0x10000 and enter it in real mode with
 * CS=0x1000, IP=0 (real mode cannot start at 0:0x10000 with IP > 0xFFFF, so
 * everything here is addressed relative to CS, the image starting at CS:0).
 *
 * Layout:
 *   offset 0: jmp over the count slot
 *   offset 4: loop count, 32-bit little-endian (build.ts: OUTLOOP_COUNT_OFFSET);
 *             the host patches it before the run; 0 means no iterations
 *   offset 8: code: ECX = count; DX = 0x80; repeat { out dx, al } ECX times;
 *             then out 0xf4, 0 (isa-debug-exit, value 0); then cli; hlt forever
 */
	.code16
	.text
	.globl _start
_start:
	jmp start
	.org 4
count:
	.long 1000
start:
	movl %cs:count, %ecx
	movw $0x80, %dx
	testl %ecx, %ecx
	jz done
loop:
	outb %al, %dx
	decl %ecx
	jnz loop
done:
	movw $0xf4, %dx
	movb $0, %al
	outb %al, %dx
halt:
	cli
	hlt
	jmp halt

	.section .note.GNU-stack, "", @progbits
