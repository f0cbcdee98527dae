/*
 * triple.S: triple-faults the CPU. dhyve enters raw 32-bit images with an
 * empty IDT (limit 0), so the divide error raised here cannot be delivered:
 * its delivery faults (#GP), that fault cannot be delivered either (#DF),
 * and a fault while delivering #DF shuts the processor down (Intel SDM
 * Vol. 3A, 6.15, "Interrupt 8 - Double Fault Exception"). Flat protected
 * mode, linked and loaded at 0x10000.
 */
	.code32
	.text
	.globl _start
_start:
	xorl %ecx, %ecx
	movl $1, %eax
	divl %ecx
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
