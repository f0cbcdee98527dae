/*
 * fallback_min.S: instructions KVM's emulator gives up on at CPL0 (on the
 * development machines, see /work/shared/environment.md), for dhyve's
 * fallback instruction emulator (cpu/fallback.ts):
 * - int3, twice: the #BP handler counts, records the return EIP the trap
 *   pushed (it must be the next instruction) and returns with iret (which
 *   KVM's emulator cannot do in protected mode either);
 * - stac, then clac, when CPUID.(EAX=7,ECX=0):EBX.SMAP[bit 20] is set;
 *   EFLAGS.AC must read 0 after them.
 * Then it writes a summary to the debug-exit port 0xf4 (dhyve exits with
 * (v << 1) | 1): v = bp_count + 4 * (return EIP right) + 8 * (clac ran)
 * + 16 * (clac ran and AC is clear): 30 with SMAP, 6 without.
 * Flat 32-bit protected mode (CS 0x10, DS 0x18 of dhyve's boot GDT), linked
 * and loaded at 0x10000. The results also sit at fixed offsets for
 * tests/fallback_kvm_test.ts.
 */
	.code32
	.text
	.globl _start
_start:
	jmp start
	.org 8
bp_count:	.long 0		/* offset 8 */
bp_eip:		.long 0		/* offset 12: return EIP of the last #BP */
expect_eip:	.long after_int3b	/* offset 16: where the second int3 must return */
clac_done:	.long 0		/* offset 20 */
ac_after:	.long 0		/* offset 24: EFLAGS.AC after clac */
start:
	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $stack_top, %esp
	/* IDT entry 3: a 32-bit interrupt gate, DPL 0, to bp_handler (SDM Vol. 3A, 6.11). */
	movl $bp_handler, %eax
	movw %ax, idt + 3 * 8
	movw $0x10, idt + 3 * 8 + 2
	movw $0x8e00, idt + 3 * 8 + 4
	shrl $16, %eax
	movw %ax, idt + 3 * 8 + 6
	lidt idtr
	int3
	int3
after_int3b:
	movl $7, %eax
	xorl %ecx, %ecx
	cpuid
	testl $(1 << 20), %ebx
	jz report
	stac
	clac
	pushfl
	popl %eax
	andl $(1 << 18), %eax
	movl %eax, ac_after
	movl $1, clac_done
report:
	movl bp_count, %eax
	movl bp_eip, %ecx
	cmpl expect_eip, %ecx
	jne 1f
	addl $4, %eax
1:	cmpl $0, clac_done
	je 2f
	addl $8, %eax
	cmpl $0, ac_after
	jne 2f
	addl $16, %eax
2:	outb %al, $0xf4
3:	cli
	hlt
	jmp 3b

bp_handler:
	incl bp_count
	movl (%esp), %eax
	movl %eax, bp_eip
	iret

	.p2align 3
idtr:	.word 32 * 8 - 1
	.long idt
	.p2align 3
idt:	.fill 32 * 8, 1, 0
	.fill 256, 1, 0
stack_top:

	.section .note.GNU-stack, "", @progbits
