/*
 * fallback_bench.S: the fallback part of dhyve's exit benchmark
 * (bench/exit_bench.ts). Flat 32-bit protected mode, linked and loaded at
 * 0x10000. The host patches the 32-bit loop count at offset 4 and the mode
 * at offset 8:
 *   1: `out 0x80, al` per iteration (one port-I/O exit: the baseline);
 *   2: `int3` per iteration, whose #BP handler returns with `iret` (two
 *      fallbacks on a KVM whose emulator gives up on both at CPL0);
 *   3: `clac` per iteration (one fallback), when CPUID.(EAX=7,ECX=0):EBX.SMAP
 *      is set; without SMAP it writes 0x7f to the debug-exit port at once
 *      (dhyve exits with 0xff: skipped);
 *   4: `int $0x40` per iteration, whose handler returns with `iret` (two
 *      fallbacks: a software interrupt injected as one, and the iret).
 * Then it writes 0 to the debug-exit port 0xf4 (dhyve exits with 1).
 */
	.code32
	.text
	.globl _start
_start:
	jmp start
	.org 4
count:	.long 1000	/* offset 4 */
mode:	.long 1		/* offset 8 */
start:
	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $stack_top, %esp
	movl $bp_handler, %eax
	movw %ax, idt + 3 * 8
	movw $0x10, idt + 3 * 8 + 2
	movw $0x8e00, idt + 3 * 8 + 4
	shrl $16, %eax
	movw %ax, idt + 3 * 8 + 6
	movl $bp_handler, %eax
	movw %ax, idt + 0x40 * 8
	movw $0x10, idt + 0x40 * 8 + 2
	movw $0x8e00, idt + 0x40 * 8 + 4
	shrl $16, %eax
	movw %ax, idt + 0x40 * 8 + 6
	lidt idtr
	movl mode, %eax
	cmpl $2, %eax
	je int3s
	cmpl $3, %eax
	je clacs
	cmpl $4, %eax
	je ints
	movl count, %ecx
	testl %ecx, %ecx
	jz done
1:	outb %al, $0x80
	decl %ecx
	jnz 1b
	jmp done
int3s:
	movl count, %ecx
	testl %ecx, %ecx
	jz done
2:	int3
	decl %ecx
	jnz 2b
	jmp done
ints:
	movl count, %ecx
	testl %ecx, %ecx
	jz done
5:	int $0x40
	decl %ecx
	jnz 5b
	jmp done
clacs:
	movl $7, %eax
	xorl %ecx, %ecx
	cpuid
	testl $(1 << 20), %ebx
	jz no_smap
	movl count, %ecx
	testl %ecx, %ecx
	jz done
3:	clac
	decl %ecx
	jnz 3b
done:
	movb $0, %al
	outb %al, $0xf4
4:	cli
	hlt
	jmp 4b
no_smap:
	movb $0x7f, %al
	outb %al, $0xf4
	jmp 4b

bp_handler:
	iret

	.p2align 3
idtr:	.word 0x41 * 8 - 1
	.long idt
	.p2align 3
idt:	.fill 0x41 * 8, 1, 0
	.fill 256, 1, 0
stack_top:

	.section .note.GNU-stack, "", @progbits
