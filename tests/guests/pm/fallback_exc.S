/*
 * fallback_exc.S: faults raised by dhyve's fallback emulator (the executor
 * of cpu/x86/, through cpu/fallback.ts), in flat 32-bit protected mode at
 * CPL0, where KVM's own emulator gives up on iret:
 * - an iret to a data segment: #GP with the selector as error code (0x18);
 * - an iret to a code segment that is not present: #NP(0x20).
 * Both are faults: the return EIP the handlers see is the iret's own. The
 * handlers record the error code and EIP, then return (with iret) to the
 * resume address the test set, which drops the frame the faulting iret
 * left. Then `fsqrt`, which KVM's emulator and dhyve's executor both lack:
 * the run ends there with dhyve's message (exit status 4). Where ring 0 runs
 * natively, fsqrt just runs and the guest writes 0x55 to the debug-exit port
 * (dhyve exits with 0xab). Linked and loaded at 0x10000 (CS 0x10, DS 0x18
 * as in dhyve's boot GDT; it loads its own GDT of that shape).
 */
	.code32
	.text
	.globl _start
_start:
	jmp start
	.org 8
gp_count:	.long 0		/* offset 8 */
gp_err:		.long 0		/* offset 12 */
gp_eip:		.long 0		/* offset 16 */
gp_expect:	.long at_gp	/* offset 20 */
np_count:	.long 0		/* offset 24 */
np_err:		.long 0		/* offset 28 */
np_eip:		.long 0		/* offset 32 */
np_expect:	.long at_np	/* offset 36 */
fsqrt_at:	.long at_fsqrt	/* offset 40: the instruction the run ends on */
resume:		.long 0

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
	lgdt gdtr
	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $stack_top, %esp
	SETGATE 11, np_handler
	SETGATE 13, gp_handler
	lidt idtr

	movl $gp_resume, resume
	pushfl
	pushl $0x18		/* a data segment as CS */
	pushl $never
at_gp:	iret
gp_resume:
	addl $12, %esp

	movl $np_resume, resume
	pushfl
	pushl $0x20		/* a code segment that is not present */
	pushl $never
at_np:	iret
np_resume:
	addl $12, %esp

	fninit
at_fsqrt:
	fsqrt
	movb $0x55, %al
	outb %al, $0xf4
1:	cli
	hlt
	jmp 1b
never:
	movb $0x66, %al
	outb %al, $0xf4
	jmp 1b

gp_handler:
	incl gp_count
	popl gp_err
	pushl %eax
	movl 4(%esp), %eax
	movl %eax, gp_eip
	movl resume, %eax
	movl %eax, 4(%esp)
	popl %eax
	iret

np_handler:
	incl np_count
	popl np_err
	pushl %eax
	movl 4(%esp), %eax
	movl %eax, np_eip
	movl resume, %eax
	movl %eax, 4(%esp)
	popl %eax
	iret

	.p2align 3
gdt:	.quad 0
	.quad 0
	.quad 0x00cf9b000000ffff	/* 0x10 code */
	.quad 0x00cf93000000ffff	/* 0x18 data */
	.quad 0x00cf1b000000ffff	/* 0x20 code, not present */
gdt_end:
	.p2align 2
	.word 0
gdtr:	.word gdt_end - gdt - 1
	.long gdt
	.word 0
idtr:	.word 32 * 8 - 1
	.long idt
	.p2align 3
idt:	.fill 32 * 8, 1, 0
	.fill 256, 1, 0
stack_top:

	.section .note.GNU-stack, "", @progbits
