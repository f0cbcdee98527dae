/*
 * fallback_sys.S: software interrupts and single-stepping that KVM's
 * instruction emulator gives up on at CPL0 in 32-bit protected mode (on the
 * development machines, see /work/shared/environment.md), for dhyve's
 * fallback emulator (cpu/fallback.ts, cpu/x86/_exec_segment.ts). Every
 * handler returns with iret, itself emulated. The checks:
 *   1  `int $0x40` reaches IDT entry 0x40 with the next instruction as the
 *      return EIP (a software interrupt, SDM Vol. 2A, INT n);
 *   2  `int $14` pushes no error code (it is not a #PF): 12 bytes of frame;
 *   4  `int $3` in its two-byte form (cd 03) returns after itself;
 *   8  with EFLAGS.TF set, `popcnt` is followed by a #DB whose DR6 has BS
 *      (bit 14) and whose return EIP is the next instruction.
 * Then it writes the sum of the bits that passed to the debug-exit port
 * 0xf4 (15: all; dhyve exits with (15 << 1) | 1 = 31). The results also sit
 * at fixed offsets for tests/fallback_kvm_test.ts. Flat 32-bit protected
 * mode (CS 0x10, DS 0x18 of dhyve's boot GDT), linked and loaded at 0x10000.
 *
 * CPL 3 is left out: on the development machines' KVM a 32-bit guest
 * without paging shuts down (triple fault) at its first trap from CPL 3,
 * and one that sets CR0.PG itself shuts down at that mov to CR0. The
 * return to an outer privilege level is covered by the executor's unit
 * tests (cpu/x86/exec_segment_test.ts).
 */
	.code32
	.text
	.globl _start
_start:
	jmp start
	.org 8
int40_eip:	.long 0			/* offset 8: return EIP seen by the int $0x40 handler */
int40_expect:	.long after_int40	/* offset 12 */
int14_frame:	.long 0			/* offset 16: bytes int $14 pushed */
int3b_eip:	.long 0			/* offset 20: return EIP of int $3 (cd 03) */
int3b_expect:	.long after_int3b	/* offset 24 */
db_dr6:		.long 0			/* offset 28: DR6 in the #DB handler */
db_eip:		.long 0			/* offset 32: return EIP of the single-step #DB */
db_expect:	.long after_popcnt	/* offset 36 */
result:		.long 0			/* offset 40: the bits that passed */
int14_esp:	.long 0

/* IDT entry \vec: a 32-bit interrupt gate, DPL 0, to \handler (SDM Vol. 3A, 6.11). */
.macro SETGATE vec, handler
	movl $\handler, %eax
	movw %ax, idt + \vec * 8
	movw $0x10, idt + \vec * 8 + 2
	movw $0x8e00, idt + \vec * 8 + 4
	shrl $16, %eax
	movw %ax, idt + \vec * 8 + 6
.endm

start:
	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $stack_top, %esp
	SETGATE 1, db_handler
	SETGATE 3, bp_handler
	SETGATE 14, int14_handler
	SETGATE 0x40, int40_handler
	lidt idtr

	/* 1: int $0x40 */
	int $0x40
after_int40:
	/* 2: int $14 pushes EIP, CS and EFLAGS only */
	movl %esp, %ebx
	int $14
	subl int14_esp, %ebx
	movl %ebx, int14_frame
	/* 4: int $3, the two-byte form */
	.byte 0xcd, 0x03
after_int3b:
	/* 8: single-step over popcnt (KVM's emulator runs the popf; the fallback the popcnt) */
	xorl %eax, %eax
	movl %eax, %dr6
	pushfl
	orl $0x100, (%esp)
	popfl
	popcnt %eax, %eax
after_popcnt:

	xorl %eax, %eax
	movl int40_eip, %ecx
	cmpl int40_expect, %ecx
	jne 1f
	orl $1, %eax
1:	cmpl $12, int14_frame
	jne 2f
	orl $2, %eax
2:	movl int3b_eip, %ecx
	cmpl int3b_expect, %ecx
	jne 3f
	orl $4, %eax
3:	movl db_eip, %ecx
	cmpl db_expect, %ecx
	jne 4f
	testl $0x4000, db_dr6
	jz 4f
	orl $8, %eax
4:	movl %eax, result
	outb %al, $0xf4
5:	cli
	hlt
	jmp 5b

int40_handler:
	pushl %eax
	movl 4(%esp), %eax
	movl %eax, int40_eip
	popl %eax
	iret

int14_handler:
	movl %esp, int14_esp
	iret

db_handler:
	pushl %eax
	movl %dr6, %eax
	movl %eax, db_dr6
	movl 4(%esp), %eax
	movl %eax, db_eip
	andl $~0x100, 12(%esp)	/* TF off in the frame's EFLAGS */
	popl %eax
	iret

bp_handler:
	pushl %eax
	movl 4(%esp), %eax
	movl %eax, int3b_eip
	popl %eax
	iret

	.p2align 2
	.word 0
idtr:	.word 0x41 * 8 - 1
	.long idt
	.p2align 3
idt:	.fill 0x41 * 8, 1, 0
	.fill 512, 1, 0
stack_top:

	.section .note.GNU-stack, "", @progbits
