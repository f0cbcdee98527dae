/*
 * entry.S: multiboot header, BSP entry, GDT, interrupt stubs and the AP
 * real-mode trampoline of the dhyve probe guest.
 *
 * Only plain integer instructions are used: under nested KVM all ring-0 code
 * goes through KVM's instruction emulator.
 */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* bit 0: page-align modules, bit 1: memory info */

#define SEL_CODE 0x08
#define SEL_DATA 0x10

#define AP_TRAMPOLINE 0x8000 /* SIPI vector 0x08; see smp.c */
#define AP_STACK_SIZE 1024
#define AP_MAX 255

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.text
	.globl _start
_start:
	cli
	cld
	movl $bsp_stack_top, %esp
	movl %eax, %esi /* multiboot magic */
	lgdt gdt_desc
	ljmp $SEL_CODE, $1f
1:	movw $SEL_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	/* zero .bss (the loader should have done it; be safe) */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
	pushl %ebx /* multiboot info */
	pushl %esi /* multiboot magic */
	call probe_main
	.globl halt_forever
halt_forever:
	cli
	hlt
	jmp halt_forever

/*
 * Interrupt stubs: each pushes an error code (0 where the CPU pushes none)
 * and the vector, then joins isr_common. isr_table (in .rodata) lists
 * {vector, stub address} pairs for idt.c.
 */
	.macro ISR vec, err=0
1:
	.if \err == 0
	pushl $0
	.endif
	pushl $\vec
	jmp isr_common
	.pushsection .rodata
	.long \vec, 1b
	.popsection
	.endm

	.pushsection .rodata
	.align 4
	.globl isr_table
isr_table:
	.popsection

	ISR 0
	ISR 1
	ISR 2
	ISR 3
	ISR 4
	ISR 5
	ISR 6
	ISR 7
	ISR 8, 1
	ISR 9
	ISR 10, 1
	ISR 11, 1
	ISR 12, 1
	ISR 13, 1
	ISR 14, 1
	ISR 15
	ISR 16
	ISR 17, 1
	ISR 18
	ISR 19
	ISR 20
	ISR 21, 1
	ISR 0x40
	ISR 0x41
	ISR 0x42
	ISR 0x50
	ISR 0x51
	ISR 0x52
	ISR 0x53
	ISR 0x54
	ISR 0x55
	ISR 0x56
	ISR 0x57
	ISR 0x58
	ISR 0x59
	ISR 0x5a
	ISR 0x5b
	ISR 0x5c
	ISR 0x5d
	ISR 0x5e
	ISR 0x5f
	ISR 0xff

	.pushsection .rodata
	.globl isr_table_end
isr_table_end:
	.popsection

isr_common:
	pushal
	cld
	pushl %esp
	call isr_dispatch
	addl $4, %esp
	popal
	addl $8, %esp
	/*
	 * Return without iret: KVM's instruction emulator implements iret only
	 * in real mode and stops the VM on a protected-mode iret. Same CPL and
	 * CS here, so rebuild the frame {EIP, CS, EFLAGS} as {EFLAGS, EIP},
	 * then popfl; ret. (An interrupt between popfl and ret nests harmlessly.)
	 */
	pushl %eax
	pushl %ecx
	movl 8(%esp), %eax  /* EIP */
	movl 16(%esp), %ecx /* EFLAGS */
	movl %eax, 16(%esp)
	movl %ecx, 12(%esp)
	popl %ecx
	popl %eax
	addl $4, %esp
	popfl
	ret

/*
 * AP trampoline: copied to AP_TRAMPOLINE by smp.c; the APs start here in real
 * mode (CS=0x0800, IP=0). Only position-independent code up to ap_tramp_end:
 * the far jump and the GDT descriptor hold absolute addresses in this image.
 */
	.code16
	.globl ap_tramp_start, ap_tramp_end
ap_tramp_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl AP_TRAMPOLINE + (ap_tramp_gdt - ap_tramp_start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE, $ap_pm32
ap_tramp_gdt:
	.word gdt_end - gdt - 1
	.long gdt
ap_tramp_end:

	.code32
ap_pm32:
	movw $SEL_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $1, %eax
	lock xaddl %eax, ap_stack_next
	cmpl $AP_MAX, %eax
	jae halt_forever
	leal 1(%eax), %esp
	shll $10, %esp /* AP_STACK_SIZE */
	addl $ap_stacks, %esp
	pushl %eax
	call ap_main
	jmp halt_forever

	.section .rodata
	.align 8
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff /* 0x08: flat 32-bit code */
	.quad 0x00cf92000000ffff /* 0x10: flat 32-bit data */
gdt_end:
	.align 4
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	.section .stack, "aw", @nobits
	.align 16
	.globl ap_stacks
ap_stacks:
	.skip AP_STACK_SIZE * AP_MAX
	.skip 8192
bsp_stack_top:

	.section .note.GNU-stack, "", @progbits
