/*
 * fallback.S: the end-to-end guest for dhyve's fallback instruction
 * emulation (cpu/x86/, called when KVM's instruction emulator gives up at
 * CPL0: KVM_EXIT_INTERNAL_ERROR, suberror 1).
 *
 * A flat x86-64 binary linked and loaded at 0x10000, entered by the raw
 * payload's long64 mode (any GDT, identity paging). It builds its own GDT
 * (kernel and user code/data, one 64-bit TSS per CPU), IDT (vectors 0-31;
 * int3 at user_exit ends a trip to user mode) and 4-level page
 * tables (4 KiB pages at 0x200000-0x3fffff, to map and unmap test pages),
 * then runs the checks chosen by the mask at offset 16, each printing one
 * line on COM1:
 *
 *     check.<name>: ok [note] | FAIL <why> | skip <why>
 *
 * then "summary: N ok, M failed, K skipped" and leaves through the
 * debug-exit port 0xf4: 0x10 (status 33) when nothing failed, 0x11
 * (status 35) otherwise, 0x12 (status 37) on an exception it cannot
 * attribute to a check.
 *
 * Most checks are differential: a snippet runs once at CPL0 (where KVM
 * gives up on the instructions and dhyve emulates them) and once at CPL3
 * (where the CPU runs them natively); registers, flags, the exception seen
 * (vector, error code without the U/S bit, CR2, RIP, count) and 4 KiB of
 * memory must come out the same, and the CPL0 results must also equal
 * constants. See fallback_checks below for the list.
 *
 * Binary header: offset 8 the magic "DHYVEFB1", offset 16 the 64-bit check
 * mask (bit i runs check i of the table), offset 24 the 64-bit iteration
 * count of the two-vCPU cmpxchg16b counter, offset 32 the self-test flag:
 * when not 0, the "CPL0" run of every snippet runs at CPL3 too, which checks
 * the guest's own expectations against the CPU (meaningful for the
 * differential checks only). tests/fallback_test.ts patches them.
 *
 * The checks (bit: name): 0 int3, 1 de (#DE from div, KVM's own), 2
 * clac_stac, 3 popcnt, 4 fwait, 5 fwait_mf (#MF), 6 mxcsr, 7 mxcsr_gp,
 * 8 cmpxchg8b, 9 cmpxchg16b, 10 cmpxchg16b_gp, 11 sse_moves (movd, movq,
 * movdqa, movdqu, movaps, movups, pxor, lddqu), 12 fxsave, 13 xsetbv, 14
 * xgetbv, 15 xsave, 16 xrstor, 17 xsaveopt, 18 xsavec, 19 xsaves, 20
 * straddle (8- and 16-byte operands across two physically reversed pages),
 * 21 straddle_xsave, 22 insn_straddle (instruction bytes across them), 23
 * pf_retry (#PF from an emulated access, mapped by the handler, retried),
 * 24 pf_straddle, 25 ud (lock misuse), 26 ud_cr (CR4.OSFXSR, CR0.EM,
 * CR4.OSXSAVE), 27 nm (CR0.TS), 28 smp_cas (needs 2 vCPUs: BSP at CPL0
 * and AP at CPL3 increment one 16-byte counter with lock cmpxchg16b; the
 * AP comes up by INIT-SIPI-SIPI through a real-mode trampoline at 0x8000).
 * Bits 0-28 are the default mask. Bad input and edge cases, each meant for
 * a VM of its own: 29 bad_rip (jump to an unmapped or non-canonical
 * address), 30 bad_rip_straddle, 31 ud_invalid (undefined opcodes, a
 * 16-byte instruction), 32 mmio_span (emulated accesses across RAM and the
 * HPET), 33 int1, 34 int_imm (int $3, cd 03).
 *
 * What the development machines' nested KVM does, found while writing it
 * (each choice below that looks odd follows from one of these):
 * - iretq at CPL0 works, to CPL0 and to CPL3, also after an exception
 *   dhyve injected; so does lretq.
 * - Code at CPL3 does not run on the guest's architectural state: IF reads
 *   1 whatever was loaded, XGETBV returns the host's XCR0 (0xe7 on an
 *   AVX-512 host where the guest set 7), and CR0.TS, CR0.EM and
 *   CR4.OSFXSR have no effect there (no #NM, no #UD). Checks that depend on
 *   those run at CPL0 only, against constants.
 * - `int imm8` at CPL3 raises #UD whatever the gate; int3 (cc) works. User
 *   mode therefore returns to the kernel with int3 at user_exit.
 * - A #GP at CPL3 from an instruction KVM's emulator cannot decode (seen:
 *   ldmxcsr with a reserved bit) arrives as #UD (KVM intercepts #GP and
 *   injects #UD when its emulation fails at CPL > 0).
 * - At CPL0 KVM itself emulates movdqa/movdqu/movaps/movups, fxsave,
 *   fxrstor, cmpxchg8b, xsetbv, fninit, fnstcw, invlpg, string moves and
 *   raises #UD for ud2, salc and lock misuse on plain ALU forms; it gives
 *   up on int3, int n, int1, clac, stac, popcnt, fwait, ldmxcsr, stmxcsr,
 *   cmpxchg16b, xgetbv, xsave*, xrstor*, movd, movq, pxor and most other
 *   SSE, and on ud0, ud1 and undefined 0f opcodes.
 * - CPUID as the guest executes it shows the host's features (SMAP,
 *   XSAVE, XSAVEOPT, ...) although dhyve's KVM_SET_CPUID2 table (from
 *   KVM_GET_SUPPORTED_CPUID) has them clear.
 *
 * Ring-0 code runs in KVM's instruction emulator on the development
 * machines (about 1.4 M instructions/s): keep it short.
 */

#define KCS 0x08
#define KDS 0x10
#define UDS 0x18
#define UCS 0x20
#define TSS0 0x28
#define TSS1 0x38
#define USEL_DS (UDS | 3)
#define USEL_CS (UCS | 3)

/* Memory (guest-physical = linear, all of it user-accessible). */
#define AP_TRAMP 0x8000         /* SIPI vector 0x08 */
#define PML4 0x100000
#define PDPT 0x101000
#define PD0 0x102000            /* 0-1 GiB */
#define PD3 0x103000            /* 3-4 GiB: IOAPIC/HPET and LAPIC pages */
#define PT_TEST 0x104000        /* 4 KiB pages for 0x200000-0x3fffff */
#define SHADOW_PT 0x105000      /* what the #PF hook maps there */
#define BSP_IDT 0x106000
#define AP_IDT 0x107000
#define BSP_STACK 0x118000
#define BSP_RSP0 0x120000
#define AP_STACK 0x128000
#define AP_RSP0 0x130000
#define BSP_USTACK 0x138000
#define AP_USTACK 0x140000
#define SMP 0x150000            /* the shared counter and flags */
#define MEM 0x160000            /* a snippet's memory, 4 KiB */
#define TPL 0x161000            /* what MEM starts as */
#define R0 0x162000             /* MEM after the CPL0 run */
#define R3 0x163000             /* MEM after the CPL3 run */
#define CIN 0x164000            /* registers in */
#define COUT 0x164200           /* registers out (the trampoline writes it) */
#define OUT0 0x164400           /* results of the CPL0 run */
#define OUT3 0x164600           /* results of the CPL3 run */
#define PAT 0x165000            /* 256 pattern bytes: xmm0-15 */
#define SCRATCH 0x166000        /* kernel scratch, 4 KiB */

/* SMP page layout: one cache line each. */
#define S_CNT (SMP + 0x000)     /* 16 bytes: low = count, high = ~count */
#define S_GO (SMP + 0x040)
#define S_PROGRESS (SMP + 0x080)
#define S_APSTATE (SMP + 0x0c0)
#define S_APDONE (SMP + 0x100)
#define S_APTORN (SMP + 0x140)
#define S_APFAULT (SMP + 0x180) /* 1, then two words of the trap frame */
#define S_APITERS (SMP + 0x1c0)
#define S_BSPFAIL (SMP + 0x200)   /* the BSP's failed CASes */
#define S_BSPTORN (SMP + 0x240)

/* Result block (CIN/COUT/OUT0/OUT3) offsets. */
#define O_RAX 0
#define O_RBX 8
#define O_RCX 16
#define O_RDX 24
#define O_RSI 32
#define O_RDI 40
#define O_RBP 48
#define O_R8 56
#define O_R9 64
#define O_R10 72
#define O_R11 80
#define O_R12 88
#define O_R13 96
#define O_R14 104
#define O_R15 112
#define O_RFL 120
#define O_VEC 128
#define O_ERR 136
#define O_CR2 144
#define O_XRIP 152
#define O_XCNT 160
#define O_SNAP 168
#define NQ 22

/* The test region (linear -> physical). */
#define VS0 0x300000            /* -> PS0: two pages, physically reversed */
#define VS1 0x301000            /* -> PS1 */
#define PS0 0x411000
#define PS1 0x410000
#define VPF 0x310000            /* not present; the #PF hook maps PPF */
#define PPF 0x420000
#define VPS0 0x314000           /* -> PPS0 */
#define VPS1 0x315000           /* not present; the hook maps PPS1 */
#define PPS0 0x424000
#define PPS1 0x426000
#define VMM0 0x320000           /* -> PMM0 (RAM) */
#define VMM1 0x321000           /* -> the HPET (MMIO) */
#define PMM0 0x430000
#define HPET 0xfed00000
#define VNX 0x330000            /* never mapped */
#define VC0 0x332000            /* -> PC0; 0x333000 never mapped */
#define PC0 0x432000
#define VC2 0x334000            /* -> PC2; 0x335000 never mapped */
#define PC2 0x434000
#define PTE_RW 7                /* P | RW | US */
#define PTE_RO 5                /* P | US */
#define PTE_MMIO 0x1f           /* P | RW | US | PWT | PCD */
#define PTI(va) (PT_TEST + (((va) - 0x200000) >> 12) * 8)
#define SHI(va) (SHADOW_PT + (((va) - 0x200000) >> 12) * 8)

#define CR0_CANON 0x80010033    /* PG WP NE ET MP PE */
#define CR0_EM 0x4
#define CR0_TS 0x8
#define CR4_OSFXSR 0x200
#define CR4_OSXSAVE 0x40000
#define LAPIC 0xfee00000

/* ------------------------------------------------------------------ */
/* Macros. Strings go to subsection 1 of .text, variables to 2. */

.macro STR label, s
	.pushsection .text, 1
\label: .asciz "\s"
	.popsection
.endm

/* Prints a literal. Clobbers rax, rdx, rsi. */
.macro PUTS s
	STR .Lputs\@, "\s"
	lea .Lputs\@(%rip), %rsi
	call puts
.endm

.macro FAIL s
	STR .Lfail\@, "\s"
	lea .Lfail\@(%rip), %rsi
	jmp check_fail
.endm

.macro SKIP s
	STR .Lskip\@, "\s"
	lea .Lskip\@(%rip), %rsi
	jmp check_skip
.endm

/* got == want (64 bits), else FAIL "<what>: got .. want ..". Clobbers rax, rdx, rsi. */
.macro EXPECT got, want, what
	STR .Lexp\@, "\what"
	mov \got, %rax
	mov \want, %rdx
	lea .Lexp\@(%rip), %rsi
	call expect_eq
.endm

/* The same on a 32-bit got (zero-extended). */
.macro EXPECT32 got, want, what
	STR .Lexp\@, "\what"
	mov \got, %eax
	mov \want, %rdx
	lea .Lexp\@(%rip), %rsi
	call expect_eq
.endm

/* The same on a 16-bit got. */
.macro EXPECT16 got, want, what
	STR .Lexp\@, "\what"
	movzwl \got, %eax
	mov \want, %rdx
	lea .Lexp\@(%rip), %rsi
	call expect_eq
.endm

/* (got & mask) == want; mask an imm32. */
.macro EXPECTM got, mask, want, what
	STR .Lexp\@, "\what"
	mov \got, %rax
	and \mask, %rax
	mov \want, %rdx
	lea .Lexp\@(%rip), %rsi
	call expect_eq
.endm

/* got == the address of label. */
.macro EXPECTL got, label, what
	STR .Lexp\@, "\what"
	mov \got, %rax
	lea \label(%rip), %rdx
	lea .Lexp\@(%rip), %rsi
	call expect_eq
.endm

/* len bytes at got == len bytes at want (len a multiple of 8). */
.macro EXPECTMEM got, want, len, what
	STR .Lexp\@, "\what"
	mov $\got, %edi
	mov $\want, %eax
	mov $\len, %ecx
	lea .Lexp\@(%rip), %rsi
	call expect_mem
.endm

/* The exception a case's CPL0 run took: vector, error code, RIP label. */
.macro EXPECTX vec, err, label, what
	EXPECT OUT0+O_XCNT, $1, "\what: exceptions taken"
	EXPECT OUT0+O_VEC, $\vec, "\what: vector"
	EXPECT OUT0+O_ERR, $\err, "\what: error code"
	EXPECTL OUT0+O_XRIP, \label, "\what: rip"
.endm

/* Arms the exception handler (usable at any CPL; keeps every register and flag). */
.macro ARMR label               /* resume at label */
	push %rdi
	push %rsi
	lea \label(%rip), %rdi
	mov $0, %esi
	call arm
	pop %rsi
	pop %rdi
.endm

.macro ARMH hook                /* call hook (in the handler), then retry */
	push %rdi
	push %rsi
	mov $0, %edi
	lea \hook(%rip), %rsi
	call arm
	pop %rsi
	pop %rdi
.endm

.macro ARM0                     /* return where the CPU says (a trap) */
	push %rdi
	push %rsi
	mov $0, %edi
	mov $0, %esi
	call arm
	pop %rsi
	pop %rdi
.endm

/* CIN or TPL qword = a 64-bit value. Clobbers rax. */
.macro SETQ addr, value
	mov $\value, %rax
	mov %rax, \addr
.endm

/* Sets up a case: fn, prep (0 for none). Clobbers rax. */
.macro CASE fn, prep=0
	lea \fn(%rip), %rax
	mov %rax, case_fn(%rip)
	.ifc \prep,0
	movq $0, case_prep(%rip)
	.else
	lea \prep(%rip), %rax
	mov %rax, case_prep(%rip)
	.endif
.endm

/* A one-instruction snippet that must fault: resumes after it. */
.macro FAULTCASE name
case_\name:
	ARMR 1f
.Lf_\name:
.endm
.macro ENDFAULT
1:	ret
.endm

/* ------------------------------------------------------------------ */
	.code64
	.text
	.globl _start
_start:
	jmp entry
	.balign 8
	.ascii "DHYVEFB1"               /* offset 8 */
check_mask:
	.quad DEFAULT_MASK              /* offset 16 */
hammer_n:
	.quad 10000                     /* offset 24 */
self_test:
	.quad 0                         /* offset 32 */

entry:
	cli
	cld
	mov $BSP_STACK, %esp
	mov $0xff, %al                  /* mask both 8259s: user mode may run with IF set */
	out %al, $0x21
	out %al, $0xa1
	call setup_memory
	call setup_gdt
	call setup_idt
	call setup_cpu
	call banner
	call run_checks
	PUTS "summary: "
	mov n_ok(%rip), %rax
	call putdec
	PUTS " ok, "
	mov n_fail(%rip), %rax
	call putdec
	PUTS " failed, "
	mov n_skip(%rip), %rax
	call putdec
	PUTS " skipped\n"
	mov $0x10, %eax
	cmpq $0, n_fail(%rip)
	je 1f
	mov $0x11, %eax
1:	out %al, $0xf4
2:	hlt
	jmp 2b

/* Ends the run after something no check can own. */
fatal_exit:
	mov $0x12, %eax
	out %al, $0xf4
1:	hlt
	jmp 1b

/* ------------------------------------------------------------------ */
/* COM1 output. */

/* putc: al. Clobbers rdx. */
putc:
	push %rax
	mov $0x3fd, %dx                 /* LSR */
1:	in %dx, %al
	test $0x20, %al                 /* THRE */
	jz 1b
	pop %rax
	mov $0x3f8, %dx                 /* THR */
	out %al, %dx
	ret

/* puts: the NUL-terminated string at rsi. Clobbers rax, rdx, rsi. */
puts:
	lodsb
	test %al, %al
	jz 1f
	call putc
	jmp puts
1:	ret

/* puthex: rax as 0x<hex>, no leading zeros. Clobbers rax, rcx, rdx. */
puthex:
	push %rbx
	mov %rax, %rbx
	mov $'0', %al
	call putc
	mov $'x', %al
	call putc
	mov $60, %ecx
1:	mov %rbx, %rax                  /* skip leading zeros, keep the last digit */
	shr %cl, %rax
	test %rax, %rax
	jnz 2f
	sub $4, %ecx
	jnz 1b
2:	mov %rbx, %rax
	shr %cl, %rax
	and $15, %eax
	add $'0', %al
	cmp $'9', %al
	jbe 3f
	add $('a' - '9' - 1), %al
3:	call putc
	sub $4, %ecx
	jns 2b
	pop %rbx
	ret

/* putdec: rax unsigned. Clobbers rax, rcx, rdx. */
putdec:
	push %rbx
	mov %rsp, %rbx
	sub $32, %rsp
	mov %rbx, %rcx
1:	xor %edx, %edx
	push %rcx
	mov $10, %ecx
	div %rcx
	pop %rcx
	add $'0', %dl
	dec %rcx
	mov %dl, (%rcx)
	test %rax, %rax
	jnz 1b
2:	mov (%rcx), %al
	call putc
	inc %rcx
	cmp %rbx, %rcx
	jb 2b
	mov %rbx, %rsp
	pop %rbx
	ret

banner:
	PUTS "fallback: cpu "
	lea vendor(%rip), %rsi
	call puts
	PUTS ", xcr0 "
	mov xcr0_full(%rip), %rax
	call puthex
	PUTS ", checks "
	mov check_mask(%rip), %rax
	call puthex
	cmpq $0, self_test(%rip)
	je 1f
	PUTS ", self-test (snippets at CPL3 only)"
1:	PUTS "\n"
	ret

/* ------------------------------------------------------------------ */
/* Set-up. */

setup_memory:
	/* Page tables, shadow table and IDTs: 0x100000-0x107fff. */
	mov $PML4, %edi
	xor %eax, %eax
	mov $(8 * 512), %ecx
	rep stosq
	movq $(PDPT | PTE_RW), PML4
	movq $(PD0 | PTE_RW), PDPT
	movq $(PD3 | PTE_RW), PDPT + 3 * 8
	/* 0-32 MiB by 2 MiB pages, but 2-4 MiB through PT_TEST. */
	mov $PD0, %edi
	mov $0x87, %eax                 /* P | RW | US | PS */
	mov $16, %ecx
1:	mov %rax, (%rdi)
	add $0x200000, %rax
	add $8, %rdi
	dec %ecx
	jnz 1b
	movq $(PT_TEST | PTE_RW), PD0 + 8
	/* IOAPIC/HPET and LAPIC: 2 MiB, uncached. */
	mov $0xfec0009f, %eax
	mov %rax, PD3 + 0x1f6 * 8
	mov $0xfee0009f, %eax
	mov %rax, PD3 + 0x1f7 * 8
	/* What the #PF hook maps. */
	movq $(PPF | PTE_RW), SHI(VPF)
	movq $(PPS1 | PTE_RW), SHI(VPS1)
	mov $PML4, %eax
	mov %rax, %cr3
	call pt_reset
	/* Pattern bytes. */
	mov $PAT, %edi
	xor %ecx, %ecx
2:	mov %ecx, %eax
	imul $0x9d, %eax, %eax
	add $0x31, %eax
	stosb
	inc %ecx
	cmp $256, %ecx
	jb 2b
	ret

/* The test region's initial mappings; flushes the TLB. */
pt_reset:
	push %rcx
	push %rdi
	mov $PT_TEST, %edi
	xor %eax, %eax
	mov $512, %ecx
	rep stosq
	movq $(PS0 | PTE_RW), PTI(VS0)
	movq $(PS1 | PTE_RW), PTI(VS1)
	movq $(PPS0 | PTE_RW), PTI(VPS0)
	movq $(PMM0 | PTE_RW), PTI(VMM0)
	mov $(HPET | PTE_MMIO), %eax
	mov %rax, PTI(VMM1)
	movq $(PC0 | PTE_RW), PTI(VC0)
	movq $(PC2 | PTE_RW), PTI(VC2)
	mov %cr3, %rax
	mov %rax, %cr3
	pop %rdi
	pop %rcx
	ret

/* rax = TSS base (below 16 MiB), rdi = descriptor: a 64-bit available TSS, limit 103. */
set_tss_desc:
	shl $16, %rax
	mov $0x890000000067, %rcx
	or %rcx, %rax
	mov %rax, (%rdi)
	movq $0, 8(%rdi)
	ret

setup_gdt:
	lea tss0(%rip), %rax
	lea gdt+TSS0(%rip), %rdi
	call set_tss_desc
	lea tss1(%rip), %rax
	lea gdt+TSS1(%rip), %rdi
	call set_tss_desc
	lgdt gdtr(%rip)
	/* Reload CS with an iretq to the next instruction. */
	mov %rsp, %rax
	pushq $KDS
	push %rax
	pushfq
	pushq $KCS
	lea 1f(%rip), %rax
	push %rax
	iretq
1:	mov $KDS, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	xor %eax, %eax
	mov %eax, %fs
	mov %eax, %gs
	mov $TSS0, %eax
	ltr %ax
	ret

/* rdi = IDT, ecx = vector, rax = handler, edx = type/DPL word (0x8e00 or 0xee00). */
set_gate:
	push %rdi
	shl $4, %rcx
	add %rcx, %rdi
	mov %ax, (%rdi)
	movw $KCS, 2(%rdi)
	mov %dx, 4(%rdi)
	shr $16, %rax
	mov %ax, 6(%rdi)
	shr $16, %rax
	mov %eax, 8(%rdi)
	movl $0, 12(%rdi)
	pop %rdi
	ret

setup_idt:
	push %rbx
	mov $BSP_IDT, %edi
	xor %ebx, %ebx
1:	lea exc_stubs(%rip), %rax
	mov %rbx, %rcx
	shl $4, %rcx
	add %rcx, %rax
	mov $0x8e00, %edx
	cmp $3, %ebx                    /* int3 and into are allowed from CPL3 */
	je 2f
	cmp $4, %ebx
	jne 3f
2:	mov $0xee00, %edx
3:	mov %ebx, %ecx
	call set_gate
	inc %ebx
	cmp $32, %ebx
	jb 1b
	lidt bsp_idtr(%rip)
	/* The AP's IDT: everything to ap_trap; int3 (its "done") from CPL3. */
	mov $AP_IDT, %edi
	xor %ebx, %ebx
4:	lea ap_trap(%rip), %rax
	mov $0x8e00, %edx
	cmp $3, %ebx
	jne 5f
	mov $0xee00, %edx
5:	mov %ebx, %ecx
	call set_gate
	inc %ebx
	cmp $32, %ebx
	jb 4b
	pop %rbx
	ret

/* CPUID facts, CR0, CR4, EFER.NXE, XCR0. */
setup_cpu:
	push %rbx
	xor %eax, %eax
	xor %ecx, %ecx
	cpuid
	mov %eax, %r8d                  /* max basic leaf */
	mov %ebx, vendor(%rip)
	mov %edx, vendor+4(%rip)
	mov %ecx, vendor+8(%rip)
	mov $1, %eax
	xor %ecx, %ecx
	cpuid
	bt $0, %ecx
	setc has_sse3(%rip)
	bt $13, %ecx
	setc has_cx16(%rip)
	bt $23, %ecx
	setc has_popcnt(%rip)
	bt $26, %ecx
	setc has_xsave(%rip)
	cmp $7, %r8d
	jb 1f
	mov $7, %eax
	xor %ecx, %ecx
	cpuid
	bt $20, %ebx
	setc has_smap(%rip)
1:	cmpb $0, has_xsave(%rip)
	je 2f
	mov $0xd, %eax
	mov $1, %ecx
	cpuid
	bt $0, %eax
	setc has_xsaveopt(%rip)
	bt $1, %eax
	setc has_xsavec(%rip)
	bt $2, %eax
	setc has_xgetbv1(%rip)
	bt $3, %eax
	setc has_xsaves(%rip)
	mov $0xd, %eax
	xor %ecx, %ecx
	cpuid
	and $4, %eax                    /* x87 | SSE, and AVX where there is one */
	or $3, %eax
	mov %rax, xcr0_full(%rip)
2:	mov $CR0_CANON, %eax
	mov %rax, %cr0
	mov $(0x20 | 0x200 | 0x400), %eax /* PAE | OSFXSR | OSXMMEXCPT */
	cmpb $0, has_xsave(%rip)
	je 3f
	or $CR4_OSXSAVE, %eax
3:	mov %rax, cr4_canon(%rip)
	mov %rax, %cr4
	mov $0xc0000080, %ecx           /* EFER */
	rdmsr
	or $0x800, %eax                 /* NXE: #PF error codes report instruction fetches */
	wrmsr
	cmpb $0, has_xsave(%rip)
	je 4f
	xor %ecx, %ecx
	mov xcr0_full(%rip), %eax
	xor %edx, %edx
	xsetbv
4:	fninit
	fxsave SCRATCH
	mov SCRATCH+28, %eax            /* MXCSR_MASK; 0 means 0xffbf */
	test %eax, %eax
	jnz 5f
	mov $0xffbf, %eax
5:	mov %rax, mxcsr_mask(%rip)
	pop %rbx
	ret

/* ------------------------------------------------------------------ */
/* Exceptions. */

	.balign 16
exc_stubs:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.balign 16
	.if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
	.else
	pushq $0
	.endif
	pushq $\v
	jmp exc_common
.endr

/* Frame offsets in exc_common, after its nine pushes. */
#define F_VEC 72
#define F_ERR 80
#define F_RIP 88
#define F_CS 96
#define F_RFL 104
#define F_RSP 112
#define F_SS 120

exc_common:
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	cmpq $3, F_VEC(%rsp)            /* int3 at user_exit: back from user mode */
	jne 1f
	lea user_exit_next(%rip), %rax
	cmp %rax, F_RIP(%rsp)
	je user_exit_entry
1:	cmpq $0, in_exc(%rip)
	jne exc_nested
	movq $1, in_exc(%rip)
	mov F_VEC(%rsp), %rax
	mov %rax, exc_vec(%rip)
	mov F_ERR(%rsp), %rax
	mov %rax, exc_err(%rip)
	mov F_RIP(%rsp), %rax
	mov %rax, exc_rip(%rip)
	mov F_CS(%rsp), %rax
	mov %rax, exc_cs(%rip)
	mov %cr2, %rax
	mov %rax, exc_cr2(%rip)
	incq exc_count(%rip)
	cmpq $0, exc_armed(%rip)
	je exc_unexpected
	movq $0, exc_armed(%rip)        /* one exception per arming */
	mov exc_hook(%rip), %rax
	test %rax, %rax
	jz 1f
	call *%rax                      /* 0: retry, -1: cannot fix, else resume there */
	cmp $-1, %rax
	je exc_unexpected
	test %rax, %rax
	jz 2f
	mov %rax, F_RIP(%rsp)
	jmp 2f
1:	mov exc_resume(%rip), %rax
	test %rax, %rax
	jz 2f
	mov %rax, F_RIP(%rsp)
2:	movq $0, in_exc(%rip)
exc_return:
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	add $16, %rsp
	iretq

/* Prints what was taken; inside a check, fails it and resumes the checks. */
exc_unexpected:
	PUTS "FAIL unexpected exception: vector "
	mov exc_vec(%rip), %rax
	call putdec
	PUTS " error "
	mov exc_err(%rip), %rax
	call puthex
	PUTS " rip "
	mov exc_rip(%rip), %rax
	call puthex
	PUTS " cs "
	mov exc_cs(%rip), %rax
	call puthex
	PUTS " cr2 "
	mov exc_cr2(%rip), %rax
	call puthex
	PUTS "\n"
	cmpq $0, check_rsp(%rip)
	je fatal_exit
	movq $1, check_status(%rip)
	lea check_aborted(%rip), %rax   /* back to the check loop, at CPL0 */
	mov %rax, F_RIP(%rsp)
	movq $KCS, F_CS(%rsp)
	movq $2, F_RFL(%rsp)
	mov check_rsp(%rip), %rax
	mov %rax, F_RSP(%rsp)
	movq $KDS, F_SS(%rsp)
	movq $0, in_exc(%rip)
	jmp exc_return

exc_nested:
	PUTS "\nFAIL exception in the exception handler: vector "
	mov F_VEC(%rsp), %rax
	call putdec
	PUTS " rip "
	mov F_RIP(%rsp), %rax
	call puthex
	PUTS "\n"
	jmp fatal_exit

/*
 * int3 at user_exit (from CPL3): back to run_user's caller. Not int $n:
 * on the development machines `int imm8` at CPL3 raises #UD, whatever
 * the gate (int3, the one-byte form, works).
 */
user_exit_entry:
	mov $KDS, %eax
	mov %eax, %ss
	mov user_ret_rsp(%rip), %rsp
	jmp user_return

/*
 * arm: rdi = where to resume (0: where the frame says), rsi = hook (0:
 * none). Clears the last exception's record, not the count. Callable at
 * any CPL; touches no register but rdi/rsi's targets and no flag.
 */
arm:
	mov %rdi, exc_resume(%rip)
	mov %rsi, exc_hook(%rip)
	movq $-1, exc_vec(%rip)
	movq $-1, exc_err(%rip)
	movq $0, exc_rip(%rip)
	movq $0, exc_cr2(%rip)
	movq $1, exc_armed(%rip)
	ret

/* exc_clear: no exception seen yet, nothing armed. */
exc_clear:
	movq $-1, exc_vec(%rip)
	movq $-1, exc_err(%rip)
	movq $0, exc_rip(%rip)
	movq $0, exc_cr2(%rip)
	movq $0, exc_count(%rip)
	movq $0, exc_armed(%rip)
	movq $0, exc_hook(%rip)
	movq $0, exc_resume(%rip)
	movq $0, pf_snap(%rip)
	ret

/*
 * The #PF hook: maps the test page CR2 is in from SHADOW_PT (after
 * snapshotting the qword at pf_snap_addr, if set) and retries.
 */
pf_hook:
	cmpq $14, exc_vec(%rip)
	jne 9f
	mov exc_cr2(%rip), %rax
	sub $0x200000, %rax
	cmp $0x200000, %rax
	jae 9f
	shr $12, %rax
	mov SHADOW_PT(,%rax,8), %rcx
	test %rcx, %rcx
	jz 9f
	mov %rcx, PT_TEST(,%rax,8)
	mov pf_snap_addr(%rip), %rax
	test %rax, %rax
	jz 1f
	mov (%rax), %rax
	mov %rax, pf_snap(%rip)
1:	mov exc_cr2(%rip), %rax
	invlpg (%rax)
	xor %eax, %eax
	ret
9:	mov $-1, %rax
	ret

/* The #NM hook: clears CR0.TS and retries. */
nm_hook:
	cmpq $7, exc_vec(%rip)
	jne 9f
	clts
	xor %eax, %eax
	ret
9:	mov $-1, %rax
	ret

/* ------------------------------------------------------------------ */
/* User mode. */

/* run_user: rdi = user RIP, rsi = user RSP; returns when user code jumps to user_exit. */
run_user:
	push %rbx
	push %rbp
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, user_ret_rsp(%rip)
	pushq $USEL_DS
	push %rsi
	pushq $2                        /* IF = 0 */
	pushq $USEL_CS
	push %rdi
	iretq
user_return:
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbp
	pop %rbx
	ret

/* ------------------------------------------------------------------ */
/* The check loop. */

run_checks:
	movq $0, cur_check(%rip)
1:	mov cur_check(%rip), %rax
	cmp $NCHECKS, %rax
	jae 9f
	bt %rax, check_mask(%rip)
	jnc 8f
	PUTS "check."
	mov cur_check(%rip), %rax
	shl $4, %rax
	lea fallback_checks(%rip), %rcx
	mov 8(%rcx,%rax), %rsi
	call puts
	PUTS ": "
	movq $0, check_status(%rip)
	movq $0, note_str(%rip)
	call exc_clear
	mov %rsp, check_rsp(%rip)
	mov cur_check(%rip), %rax
	shl $4, %rax
	lea fallback_checks(%rip), %rcx
	call *(%rcx,%rax)
check_aborted:
	mov check_rsp(%rip), %rsp
	movq $0, check_rsp(%rip)
	call reset_state
	mov check_status(%rip), %rax
	cmp $1, %rax
	je 3f
	cmp $2, %rax
	je 4f
	PUTS "ok"
	mov note_str(%rip), %rsi
	test %rsi, %rsi
	jz 2f
	mov $' ', %al
	call putc
	mov note_str(%rip), %rsi
	call puts
2:	PUTS "\n"
	incq n_ok(%rip)
	jmp 8f
3:	incq n_fail(%rip)
	jmp 8f
4:	incq n_skip(%rip)
8:	incq cur_check(%rip)
	jmp 1b
9:	ret

/* check_fail / check_skip: rsi = why. */
check_fail:
	push %rsi
	PUTS "FAIL "
	pop %rsi
	call puts
	PUTS "\n"
	movq $1, check_status(%rip)
	jmp check_aborted
check_skip:
	push %rsi
	PUTS "skip "
	pop %rsi
	call puts
	PUTS "\n"
	movq $2, check_status(%rip)
	jmp check_aborted

/* expect_eq: rax = got, rdx = want, rsi = what. */
expect_eq:
	cmp %rdx, %rax
	jne 1f
	ret
1:	push %rdx
	push %rax
	push %rsi
	PUTS "FAIL "
	pop %rsi
	call puts
	PUTS ": got "
	pop %rax
	call puthex
	PUTS " want "
	pop %rax
	call puthex
	PUTS "\n"
	movq $1, check_status(%rip)
	jmp check_aborted

/* expect_mem: rdi = got, rax = want, rcx = length (multiple of 8), rsi = what. */
expect_mem:
	push %rbx
	xor %ebx, %ebx
1:	mov (%rdi,%rbx), %rdx
	cmp (%rax,%rbx), %rdx
	jne 2f
	add $8, %rbx
	cmp %rcx, %rbx
	jb 1b
	pop %rbx
	ret
2:	push (%rax,%rbx)
	push %rdx
	push %rbx
	push %rsi
	PUTS "FAIL "
	pop %rsi
	call puts
	PUTS " +"
	pop %rax
	call puthex
	PUTS ": got "
	pop %rax
	call puthex
	PUTS " want "
	pop %rax
	call puthex
	PUTS "\n"
	movq $1, check_status(%rip)
	jmp check_aborted

/* Canonical CR0/CR4. */
reset_cr:
	mov $CR0_CANON, %eax
	mov %rax, %cr0
	mov cr4_canon(%rip), %rax
	mov %rax, %cr4
	ret

/* After each check: nothing armed, canonical control registers, XCR0, mappings and x87. */
reset_state:
	call exc_clear
	movq $0, pf_snap_addr(%rip)
	call reset_cr
	call pt_reset
	cmpb $0, has_xsave(%rip)
	je 1f
	xor %ecx, %ecx
	mov xcr0_full(%rip), %eax
	xor %edx, %edx
	xsetbv
1:	fninit
	ret

/* ------------------------------------------------------------------ */
/* Cases: a snippet run at CPL0 and at CPL3, results compared. */

/* case_begin: CIN zero (RFLAGS 2), TPL zero, CPL0 and CPL3, no prep. */
case_begin:
	mov $CIN, %edi
	xor %eax, %eax
	mov $NQ, %ecx
	rep stosq
	movq $2, CIN+O_RFL
	mov $TPL, %edi
	mov $512, %ecx
	rep stosq
	movq $0, case_prep(%rip)
	movq $0, case_k_only(%rip)
	ret

/* TPL -> MEM, exception record cleared, mappings reset, then the case's prep. */
case_prepare:
	mov $TPL, %esi
	mov $MEM, %edi
	mov $512, %ecx
	rep movsq
	call exc_clear
	call pt_reset
	mov case_prep(%rip), %rax
	test %rax, %rax
	jz 1f
	call *%rax
1:	ret

/* The snippet runs here, at either CPL: registers from CIN, results to COUT. */
case_tramp:
	pushq CIN+O_RFL
	popfq
	mov CIN+O_RAX, %rax
	mov CIN+O_RBX, %rbx
	mov CIN+O_RCX, %rcx
	mov CIN+O_RDX, %rdx
	mov CIN+O_RSI, %rsi
	mov CIN+O_RDI, %rdi
	mov CIN+O_RBP, %rbp
	mov CIN+O_R8, %r8
	mov CIN+O_R9, %r9
	mov CIN+O_R10, %r10
	mov CIN+O_R11, %r11
	mov CIN+O_R12, %r12
	mov CIN+O_R13, %r13
	mov CIN+O_R14, %r14
	mov CIN+O_R15, %r15
	call *case_fn(%rip)
	mov %rax, COUT+O_RAX
	mov %rbx, COUT+O_RBX
	mov %rcx, COUT+O_RCX
	mov %rdx, COUT+O_RDX
	mov %rsi, COUT+O_RSI
	mov %rdi, COUT+O_RDI
	mov %rbp, COUT+O_RBP
	mov %r8, COUT+O_R8
	mov %r9, COUT+O_R9
	mov %r10, COUT+O_R10
	mov %r11, COUT+O_R11
	mov %r12, COUT+O_R12
	mov %r13, COUT+O_R13
	mov %r14, COUT+O_R14
	mov %r15, COUT+O_R15
	pushfq
	popq COUT+O_RFL
	cmpq $3, case_cpl(%rip)
	je user_exit
	ret
user_exit:
	int3
user_exit_next:

/* rdi = result block, rsi = memory copy: COUT, the exception record and MEM. */
case_collect:
	push %rdi
	push %rsi
	mov $COUT, %esi
	mov $16, %ecx
	rep movsq
	mov exc_vec(%rip), %rax
	stosq
	mov exc_err(%rip), %rax
	stosq
	mov exc_cr2(%rip), %rax
	stosq
	mov exc_rip(%rip), %rax
	stosq
	mov exc_count(%rip), %rax
	stosq
	mov pf_snap(%rip), %rax
	stosq
	pop %rdi
	mov $MEM, %esi
	mov $512, %ecx
	rep movsq
	pop %rdi
	ret

/* Runs the case at CPL0 (results OUT0, R0) and CPL3 (OUT3, R3) and compares them. */
run_case:
	push %rbx
	push %rbp
	push %r12
	push %r13
	push %r14
	push %r15
	call case_prepare
	cmpq $0, self_test(%rip)
	jne 2f
	movq $0, case_cpl(%rip)
	call case_tramp
	jmp 3f
2:	movq $3, case_cpl(%rip)         /* self-test: the "CPL0" run at CPL3 too */
	lea case_tramp(%rip), %rdi
	mov $BSP_USTACK, %esi
	call run_user
3:	call reset_cr
	mov $OUT0, %edi
	mov $R0, %esi
	call case_collect
	cmpq $0, self_test(%rip)
	je 4f
	cmpq $14, OUT0+O_VEC
	jne 4f
	andq $~4, OUT0+O_ERR            /* self-test: #PF error codes as if from CPL0 */
4:	cmpq $0, case_k_only(%rip)
	jne 1f
	call case_prepare
	movq $3, case_cpl(%rip)
	lea case_tramp(%rip), %rdi
	mov $BSP_USTACK, %esi
	call run_user
	call reset_cr
	mov $OUT3, %edi
	mov $R3, %esi
	call case_collect
	call case_compare
1:	call exc_clear
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbp
	pop %rbx
	ret

/* OUT0 vs OUT3 (flags: arithmetic and DF; error code: without U/S), R0 vs R3. */
case_compare:
	push %rbx
	xor %ebx, %ebx
1:	mov OUT0(,%rbx,8), %rax
	mov OUT3(,%rbx,8), %rdx
	cmp $(O_RFL / 8), %ebx
	jne 2f
	and $0xcd5, %eax
	and $0xcd5, %edx
2:	cmp $(O_ERR / 8), %ebx
	jne 3f
	and $~4, %rax
	and $~4, %rdx
3:	cmp %rdx, %rax
	jne 5f
	inc %ebx
	cmp $NQ, %ebx
	jb 1b
	xor %ebx, %ebx
4:	mov R0(,%rbx,8), %rax
	mov R3(,%rbx,8), %rdx
	cmp %rdx, %rax
	jne 6f
	inc %ebx
	cmp $512, %ebx
	jb 4b
	pop %rbx
	ret
5:	push %rdx
	push %rax
	PUTS "FAIL cpl0 and cpl3 differ: "
	lea field_names(%rip), %rsi
	lea (%rsi,%rbx,8), %rsi
	call puts
	jmp 7f
6:	push %rdx
	push %rax
	PUTS "FAIL cpl0 and cpl3 differ: mem+"
	lea (,%rbx,8), %rax
	call puthex
7:	PUTS " cpl0="
	pop %rax
	call puthex
	PUTS " cpl3="
	pop %rax
	call puthex
	PUTS "\n"
	movq $1, check_status(%rip)
	jmp check_aborted

/* xmm0-15 <- PAT (movdqu: KVM's emulator does it). */
load_xmm_pat:
	movdqu PAT+0x00, %xmm0
	movdqu PAT+0x10, %xmm1
	movdqu PAT+0x20, %xmm2
	movdqu PAT+0x30, %xmm3
	movdqu PAT+0x40, %xmm4
	movdqu PAT+0x50, %xmm5
	movdqu PAT+0x60, %xmm6
	movdqu PAT+0x70, %xmm7
	movdqu PAT+0x80, %xmm8
	movdqu PAT+0x90, %xmm9
	movdqu PAT+0xa0, %xmm10
	movdqu PAT+0xb0, %xmm11
	movdqu PAT+0xc0, %xmm12
	movdqu PAT+0xd0, %xmm13
	movdqu PAT+0xe0, %xmm14
	movdqu PAT+0xf0, %xmm15
	ret

/* xmm0-15 <- 0, from the zero qwords at MEM+0xff0. */
zero_xmm:
	movdqu MEM+0xff0, %xmm0
	movdqa %xmm0, %xmm1
	movdqa %xmm0, %xmm2
	movdqa %xmm0, %xmm3
	movdqa %xmm0, %xmm4
	movdqa %xmm0, %xmm5
	movdqa %xmm0, %xmm6
	movdqa %xmm0, %xmm7
	movdqa %xmm0, %xmm8
	movdqa %xmm0, %xmm9
	movdqa %xmm0, %xmm10
	movdqa %xmm0, %xmm11
	movdqa %xmm0, %xmm12
	movdqa %xmm0, %xmm13
	movdqa %xmm0, %xmm14
	movdqa %xmm0, %xmm15
	ret

/* rdi = where: xmm0-15, 256 bytes. */
dump_xmm:
	movdqu %xmm0, 0x00(%rdi)
	movdqu %xmm1, 0x10(%rdi)
	movdqu %xmm2, 0x20(%rdi)
	movdqu %xmm3, 0x30(%rdi)
	movdqu %xmm4, 0x40(%rdi)
	movdqu %xmm5, 0x50(%rdi)
	movdqu %xmm6, 0x60(%rdi)
	movdqu %xmm7, 0x70(%rdi)
	movdqu %xmm8, 0x80(%rdi)
	movdqu %xmm9, 0x90(%rdi)
	movdqu %xmm10, 0xa0(%rdi)
	movdqu %xmm11, 0xb0(%rdi)
	movdqu %xmm12, 0xc0(%rdi)
	movdqu %xmm13, 0xd0(%rdi)
	movdqu %xmm14, 0xe0(%rdi)
	movdqu %xmm15, 0xf0(%rdi)
	ret

/* rsi -> rdi, rcx bytes. */
memcpy:
	rep movsb
	ret

/*
 * An XSAVE image (standard form, 576 bytes) at rdi: FCW 0x027f (not the
 * x87 init value), MXCSR 0x1fa0, XMM i = PAT bytes 16i..16i+15,
 * XSTATE_BV = 3. The 576 bytes must be zero before.
 */
make_xsave_image:
	movw $0x027f, (%rdi)
	movl $0x1fa0, 24(%rdi)
	movq $3, 512(%rdi)
	push %rdi
	add $160, %rdi
	mov $PAT, %esi
	mov $256, %ecx
	rep movsb
	pop %rdi
	ret

/* Software popcount of rax -> rax. */
sw_popcnt:
	push %rcx
	xor %ecx, %ecx
1:	test %rax, %rax
	jz 2f
	mov %rax, %rdx
	dec %rdx
	and %rdx, %rax
	inc %ecx
	jmp 1b
2:	mov %ecx, %eax
	pop %rcx
	ret

need_xsave:
	cmpb $0, has_xsave(%rip)
	jne 1f
	SKIP "no XSAVE: CPUID.1:ECX[26] = 0"
1:	ret

/* ------------------------------------------------------------------ */
/* The checks. Each returns (ok), or FAILs/SKIPs, which resume the loop. */

/* int3 at CPL0: the #BP handler runs and returns after the instruction. */
chk_int3:
	ARM0
	mov $0x1234, %ebx
	int3
.Lint3_next:
	EXPECT exc_vec(%rip), $3, "int3: vector"
	EXPECTL exc_rip(%rip), .Lint3_next, "int3: return rip"
	EXPECT exc_cs(%rip), $KCS, "int3: cs"
	EXPECT exc_count(%rip), $1, "int3: exceptions taken"
	EXPECT %rbx, $0x1234, "int3: rbx"
	ret

/* int $3 (cd 03) and into-less int $n forms at CPL0: #BP through the gate, a trap. */
chk_int_imm:
	ARM0
	.byte 0xcd, 0x03                /* int $3, the two-byte form */
.Lint3b_next:
	EXPECT exc_vec(%rip), $3, "int 3: vector"
	EXPECTL exc_rip(%rip), .Lint3b_next, "int 3: return rip"
	EXPECT exc_count(%rip), $1, "int 3: exceptions taken"
	ret

/* div by zero (KVM's own emulator raises #DE): the IDT works. */
chk_de:
	ARMR .Lde_after
	mov $1, %eax
	xor %edx, %edx
	xor %ecx, %ecx
.Lde_insn:
	div %rcx
.Lde_after:
	EXPECT exc_vec(%rip), $0, "div: vector"
	EXPECTL exc_rip(%rip), .Lde_insn, "div: rip"
	EXPECT exc_count(%rip), $1, "div: exceptions taken"
	ret

/* clac/stac: RFLAGS.AC after each, other flags kept (CPL0 only: #UD at CPL3). */
chk_clac_stac:
	cmpb $0, has_smap(%rip)
	jne 1f
	SKIP "no SMAP: CPUID.(7,0):EBX[20] = 0"
1:	stc                             /* (EXPECT changes the arithmetic flags: set CF each time) */
	stac
	pushfq
	pop %rbx
	EXPECTM %rbx, $0x40001, $0x40001, "stac: AC|CF"
	stc
	clac
	pushfq
	pop %rbx
	EXPECTM %rbx, $0x40001, $1, "clac: AC|CF"
	stc
	clac
	clac
	pushfq
	pop %rbx
	EXPECTM %rbx, $0x40001, $1, "clac twice: AC|CF"
	clc
	stac
	stac
	pushfq
	pop %rbx
	EXPECTM %rbx, $0x40001, $0x40000, "stac twice: AC|CF"
	clc
	clac
	pushfq
	pop %rbx
	EXPECTM %rbx, $0x40001, $0, "clac after stac: AC|CF"
	ret

/* popcnt: 64-, 32- and 16-bit, register and memory, flags. */
chk_popcnt:
	cmpb $0, has_popcnt(%rip)
	jne 1f
	SKIP "no POPCNT: CPUID.1:ECX[23] = 0"
1:	call case_begin
	CASE case_popcnt
	SETQ CIN+O_RAX, 0x123456789abcdef0
	SETQ CIN+O_RCX, 0xffffffff00000003
	SETQ CIN+O_RSI, 0xffffffffffff7fff
	SETQ CIN+O_RDI, 0x1111111111111111
	SETQ CIN+O_RFL, 0x8d7
	SETQ TPL, 0x8000000000000001
	call run_case
	EXPECT OUT0+O_RBX, $32, "popcnt r64"
	EXPECT OUT0+O_RDX, $2, "popcnt r32"
	EXPECT OUT0+O_RDI, $0x111111111111000f, "popcnt r16"
	EXPECT OUT0+O_R8, $2, "popcnt m64"
	EXPECTM OUT0+O_R9, $0x8d5, $0, "popcnt of non-zero: flags"
	EXPECT OUT0+O_R11, $0, "popcnt of zero"
	EXPECTM OUT0+O_R12, $0x8d5, $0x40, "popcnt of zero: flags"
	SETQ CIN+O_RAX, -1
	SETQ CIN+O_RCX, -1
	SETQ CIN+O_RSI, -1
	SETQ CIN+O_RFL, 2
	SETQ TPL, -1
	call run_case
	EXPECT OUT0+O_RBX, $64, "popcnt r64 (ones)"
	EXPECT OUT0+O_RDX, $32, "popcnt r32 (ones)"
	EXPECT OUT0+O_RDI, $0x1111111111110010, "popcnt r16 (ones)"
	EXPECT OUT0+O_R8, $64, "popcnt m64 (ones)"
	EXPECTM OUT0+O_R12, $0x8d5, $0x40, "popcnt of zero (flags were clear)"
	ret
case_popcnt:
	popcnt %rax, %rbx
	popcnt %ecx, %edx
	popcnt %si, %di
	popcnt MEM, %r8
	pushfq
	pop %r9
	popcnt %r10, %r11
	pushfq
	pop %r12
	and $0xcd5, %r9                 /* IF may differ at CPL3 */
	and $0xcd5, %r12
	ret

/* fwait with nothing pending: no exception. */
chk_fwait:
	fninit
	fwait
	fwait
	EXPECT exc_count(%rip), $0, "fwait: exceptions taken"
	ret

/* fwait with an unmasked x87 exception pending (loaded by fxrstor): #MF. */
chk_fwait_mf:
	call case_begin
	fninit
	fxsave TPL
	movw $0x037e, TPL               /* FCW: invalid-operation unmasked */
	movw $0x8081, TPL+2             /* FSW: B | ES | IE */
	CASE case_fwait_mf
	call run_case
	EXPECTX 16, 0, .Lf_fwait_mf, "fwait"
	ret
case_fwait_mf:
	fxrstor MEM
	ARMR 1f
.Lf_fwait_mf:
	fwait
1:	fninit
	ret

/* ldmxcsr/stmxcsr. */
chk_mxcsr:
	call case_begin
	CASE case_mxcsr
	movl $0x3fa5, TPL+16            /* RC 01, all masked, IE ZE PE set */
	mov mxcsr_mask(%rip), %rax
	and $0x40, %eax                 /* DAZ where the CPU has it */
	or $0xdf80, %eax                /* FZ, RC 10, all masked */
	mov %eax, TPL+20
	mov %rax, %rbx
	movl $0x1f80, TPL+24
	call run_case
	EXPECT32 R0+4, $0x3fa5, "stmxcsr after ldmxcsr 0x3fa5"
	EXPECT32 R0+8, %rbx, "stmxcsr after ldmxcsr FZ|RC|DAZ"
	EXPECT32 R0+12, $0x1f80, "stmxcsr after ldmxcsr 0x1f80"
	ret
case_mxcsr:
	stmxcsr MEM
	ldmxcsr MEM+16
	stmxcsr MEM+4
	ldmxcsr MEM+20
	stmxcsr MEM+8
	ldmxcsr MEM+24
	stmxcsr MEM+12
	ret

/*
 * ldmxcsr of a reserved bit: #GP(0), MXCSR kept. CPL0 only: at CPL3 the
 * development machines' KVM intercepts the #GP, fails to emulate ldmxcsr
 * and injects #UD instead.
 */
chk_mxcsr_gp:
	call case_begin
	CASE case_mxcsr_gp
	movq $1, case_k_only(%rip)
	movl $0x1f80, TPL+16
	movl $0x80001f80, TPL+20
	call run_case
	EXPECTX 13, 0, .Lf_mxcsr_gp, "ldmxcsr 0x80001f80"
	EXPECT32 R0, $0x1f80, "mxcsr after the fault"
	ret
case_mxcsr_gp:
	ldmxcsr MEM+16
	ARMR 1f
.Lf_mxcsr_gp:
	ldmxcsr MEM+20
1:	stmxcsr MEM
	ret

/* cmpxchg8b: success and failure. */
chk_cmpxchg8b:
	call case_begin
	CASE case_cx8
	SETQ CIN+O_RAX, 0xaaaaaaaa11111111
	SETQ CIN+O_RDX, 0xbbbbbbbb22222222
	SETQ CIN+O_RBX, 0xcccccccc33333333
	SETQ CIN+O_RCX, 0xdddddddd44444444
	SETQ CIN+O_RFL, 0x897
	SETQ TPL, 0x2222222211111111
	SETQ TPL+8, 0x9999999988888888
	call run_case
	EXPECT R0, $0x4444444433333333, "cmpxchg8b success: memory"
	EXPECTM OUT0+O_R8, $0x8d5, $0x8d5, "cmpxchg8b success: flags"
	EXPECT R0+8, $0x9999999988888888, "cmpxchg8b failure: memory"
	EXPECTM OUT0+O_R9, $0x8d5, $0x895, "cmpxchg8b failure: flags"
	EXPECT OUT0+O_RAX, $0x88888888, "cmpxchg8b failure: rax"
	EXPECT OUT0+O_RDX, $0x99999999, "cmpxchg8b failure: rdx"
	ret
case_cx8:
	lock cmpxchg8b MEM
	pushfq
	pop %r8
	lock cmpxchg8b MEM+8
	pushfq
	pop %r9
	and $0xcd5, %r8                 /* IF may differ at CPL3 */
	and $0xcd5, %r9
	ret

/* lock cmpxchg16b: success (memory <- RCX:RBX, ZF) and failure (RDX:RAX <- memory). */
chk_cmpxchg16b:
	cmpb $0, has_cx16(%rip)
	jne 1f
	SKIP "no CMPXCHG16B: CPUID.1:ECX[13] = 0"
1:	call case_begin
	CASE case_cx16
	SETQ CIN+O_RAX, 0x0123456789abcdef
	SETQ CIN+O_RDX, 0xfedcba9876543210
	SETQ CIN+O_RBX, 0x1111111111111111
	SETQ CIN+O_RCX, 0x2222222222222222
	SETQ CIN+O_RFL, 0x897
	SETQ TPL, 0x0123456789abcdef
	SETQ TPL+8, 0xfedcba9876543210
	SETQ TPL+16, 0x5555555555555555
	SETQ TPL+24, 0x6666666666666666
	SETQ TPL+32, 0x5555555555555555
	SETQ TPL+40, 0x6666666666666666
	call run_case
	EXPECT R0, $0x1111111111111111, "success: memory low"
	EXPECT R0+8, $0x2222222222222222, "success: memory high"
	EXPECTM OUT0+O_R8, $0x8d5, $0x8d5, "success: flags"
	EXPECT R0+16, $0x5555555555555555, "failure: memory low"
	EXPECT R0+24, $0x6666666666666666, "failure: memory high"
	EXPECTM OUT0+O_R9, $0x8d5, $0x895, "failure: flags"
	EXPECT R0+32, $0x1111111111111111, "unlocked success: memory low"
	EXPECT R0+40, $0x2222222222222222, "unlocked success: memory high"
	EXPECTM OUT0+O_R10, $0x8d5, $0x8d5, "unlocked success: flags"
	EXPECT OUT0+O_RAX, $0x5555555555555555, "failure: rax"
	EXPECT OUT0+O_RDX, $0x6666666666666666, "failure: rdx"
	ret
case_cx16:
	lock cmpxchg16b MEM
	pushfq
	pop %r8
	lock cmpxchg16b MEM+16
	pushfq
	pop %r9
	cmpxchg16b MEM+32
	pushfq
	pop %r10
	and $0xcd5, %r8                 /* IF may differ at CPL3 */
	and $0xcd5, %r9
	and $0xcd5, %r10
	ret

/* cmpxchg16b on an 8-byte-aligned operand: #GP(0), nothing written. */
chk_cmpxchg16b_gp:
	cmpb $0, has_cx16(%rip)
	jne 1f
	SKIP "no CMPXCHG16B: CPUID.1:ECX[13] = 0"
1:	call case_begin
	CASE case_cx16_gp
	SETQ TPL+8, 0x7777777777777777
	call run_case
	EXPECTX 13, 0, .Lf_cx16_gp, "lock cmpxchg16b [16n+8]"
	EXPECT R0+8, $0x7777777777777777, "memory after the fault"
	ret
FAULTCASE cx16_gp
	lock cmpxchg16b MEM+8
ENDFAULT

/* SSE moves: movd/movq in every direction, movdqa/movdqu/movaps/movups, pxor, lddqu. */
chk_sse_moves:
	call case_begin
	CASE case_sse
	mov $TPL, %edi                  /* TPL bytes 0..63 = 0..63 */
	xor %eax, %eax
1:	stosb
	inc %eax
	cmp $64, %eax
	jb 1b
	SETQ CIN+O_RAX, 0x8877665544332211
	SETQ CIN+O_RDX, -1
	SETQ CIN+O_R9, 0x0badc0ffee0ddf00
	call run_case
	EXPECT R0+64, $0x44332211, "movd xmm, r32"
	EXPECT R0+72, $0, "movd xmm, r32: upper"
	EXPECT R0+80, $0x8877665544332211, "movq xmm, r64"
	EXPECT R0+88, $0, "movq xmm, r64: upper"
	EXPECT OUT0+O_RBX, $0x0706050403020100, "movq r64, xmm"
	EXPECT OUT0+O_RDX, $0x03020100, "movd r32, xmm"
	EXPECT R0+96, $0x0f0e0d0c0b0a0908, "movq xmm, m64"
	EXPECT R0+104, $0, "movq xmm, m64: upper"
	EXPECT R0+112, $0x0706050403020100, "movq m64, xmm"
	EXPECT R0+120, $0x03020100, "movd m32, xmm"
	EXPECT R0+128, $0x07060504, "movd xmm, m32"
	EXPECT R0+136, $0, "movd xmm, m32: upper"
	EXPECT R0+144, $0x020e0e0202060602, "pxor xmm, xmm (low)"
	EXPECT R0+152, $0x021e1e0202060602, "pxor xmm, xmm (high)"
	EXPECT R0+160, $0, "pxor xmm, m128 (low)"
	EXPECT R0+168, $0, "pxor xmm, m128 (high)"
	EXPECT R0+176, $0x0706050403020100, "movq xmm, xmm"
	EXPECT R0+184, $0, "movq xmm, xmm: upper"
	EXPECT OUT0+O_R10, $0x0badc0ffee0ddf00, "movq r64, xmm10"
	EXPECT R0+192, $0x0badc0ffee0ddf00, "movq xmm10, r64"
	EXPECT R0+208, $0x0c0b0a0908070605, "lddqu (low)"
	EXPECT R0+216, $0x14131211100f0e0d, "lddqu (high)"
	ret
case_sse:
	pxor %xmm0, %xmm0
	movdqa MEM, %xmm1
	movd %eax, %xmm0
	movdqu %xmm0, MEM+64
	movq %rax, %xmm2
	movdqu %xmm2, MEM+80
	movq %xmm1, %rbx
	movd %xmm1, %edx
	movq MEM+8, %xmm3
	movdqu %xmm3, MEM+96
	movq %xmm1, MEM+112
	movd %xmm1, MEM+120
	movd MEM+4, %xmm4
	movdqa %xmm4, MEM+128
	movdqu MEM+1, %xmm5
	movups MEM+3, %xmm6
	movaps MEM+16, %xmm7
	pxor %xmm5, %xmm6
	movups %xmm6, MEM+144
	pxor MEM+16, %xmm7
	movaps %xmm7, MEM+160
	movq %xmm1, %xmm8
	movdqu %xmm8, MEM+176
	movq %r9, %xmm10
	movq %xmm10, %r10
	movdqu %xmm10, MEM+192
	cmpb $0, has_sse3(%rip)
	je 1f
	lddqu MEM+5, %xmm11
	movdqu %xmm11, MEM+208
1:	ret

/* fxsave/fxrstor. */
chk_fxsave:
	call case_begin
	CASE case_fxsave
	movl $0x1fa0, TPL+0x600
	movl $0x1f80, TPL+0x604
	/* image 2 at TPL+0x200: FCW 0x037f, MXCSR 0x1f80, XMM i = PAT xmm (i+1)%16 */
	movw $0x037f, TPL+0x200
	movl $0x1f80, TPL+0x200+24
	mov $(PAT + 16), %esi
	mov $(TPL + 0x200 + 160), %edi
	mov $240, %ecx
	call memcpy
	mov $PAT, %esi
	mov $16, %ecx
	call memcpy
	call run_case
	EXPECT16 R0, $0x037f, "fxsave: FCW"
	EXPECT32 R0+24, $0x1fa0, "fxsave: MXCSR"
	EXPECTMEM R0+160, PAT, 256, "fxsave: XMM0-15"
	EXPECTMEM R0+0x400, PAT+16, 240, "fxrstor: XMM0-14"
	EXPECTMEM R0+0x4f0, PAT, 16, "fxrstor: XMM15"
	EXPECT32 R0+0x500, $0x1f80, "fxrstor: MXCSR"
	EXPECT16 R0+0x504, $0x037f, "fxrstor: FCW"
	ret
case_fxsave:
	call load_xmm_pat
	ldmxcsr MEM+0x600
	fxsave MEM
	movw $0, MEM+6                  /* FOP, FIP, FDP: where the last x87 instruction was */
	movq $0, MEM+8
	movq $0, MEM+16
	fxrstor MEM+0x200
	mov $(MEM + 0x400), %edi
	call dump_xmm
	stmxcsr MEM+0x500
	fnstcw MEM+0x504
	ldmxcsr MEM+0x604
	ret

/* xsetbv (KVM's emulator does it here) and xgetbv: XCR0 round trip, #GP for bad values. */
chk_xsetbv:
	call need_xsave
	xor %ecx, %ecx
	mov $3, %eax
	xor %edx, %edx
	xsetbv
	mov $-1, %rax
	mov $-1, %rdx
	xor %ecx, %ecx
	xgetbv
	mov %rax, %r8
	mov %rdx, %r9
	EXPECT %r8, $3, "xgetbv after xsetbv 3: rax"
	EXPECT %r9, $0, "xgetbv after xsetbv 3: rdx"
	xor %ecx, %ecx
	mov xcr0_full(%rip), %rax
	xor %edx, %edx
	xsetbv
	xor %ecx, %ecx
	xgetbv
	EXPECT %rax, xcr0_full(%rip), "xgetbv after xsetbv full"
	ARMR 1f
	xor %ecx, %ecx
	mov $2, %eax                    /* x87 clear: invalid */
	xor %edx, %edx
.Lxsetbv_bad:
	xsetbv
1:	EXPECT exc_vec(%rip), $13, "xsetbv 2: vector"
	EXPECT exc_err(%rip), $0, "xsetbv 2: error code"
	EXPECTL exc_rip(%rip), .Lxsetbv_bad, "xsetbv 2: rip"
	xor %ecx, %ecx
	xgetbv
	EXPECT %rax, xcr0_full(%rip), "xgetbv after the failed xsetbv"
	ret

/*
 * xgetbv: XCR0 zero-extended; a bad index is #GP(0). CPL0 only: code at
 * CPL3 on the development machines sees the host's XCR0.
 */
chk_xgetbv:
	call need_xsave
	call case_begin
	CASE case_xgetbv
	movq $1, case_k_only(%rip)
	SETQ CIN+O_RAX, -1
	SETQ CIN+O_RDX, -1
	call run_case
	EXPECT OUT0+O_R8, xcr0_full(%rip), "xgetbv 0: rax"
	EXPECT OUT0+O_R9, $0, "xgetbv 0: rdx"
	EXPECTX 13, 0, .Lf_xgetbv, "xgetbv 0x12345"
	cmpb $0, has_xgetbv1(%rip)
	je 1f
	cmpq $0, self_test(%rip)
	jne 1f
	mov $1, %ecx                    /* XINUSE: a subset of XCR0 */
	xgetbv
	mov xcr0_full(%rip), %rdx
	not %rdx
	and %rdx, %rax
	EXPECT %rax, $0, "xgetbv 1: bits outside XCR0"
1:	ret
case_xgetbv:
	xor %ecx, %ecx
	xgetbv
	mov %rax, %r8
	mov %rdx, %r9
	ARMR 1f
	mov $0x12345, %ecx
.Lf_xgetbv:
	xgetbv
1:	ret

/* TPL: XSAVE image 1 at 0 (see make_xsave_image). */
xsave_tpl:
	call case_begin
	mov $TPL, %edi
	call make_xsave_image
	ret

/* xsave after xrstor: legacy fields, XMM, XSTATE_BV; misaligned: #GP(0). */
chk_xsave:
	call need_xsave
	call xsave_tpl
	CASE case_xsave
	call run_case
	EXPECT16 R0+0x400, $0x027f, "xsave: FCW"
	EXPECT32 R0+0x418, $0x1fa0, "xsave: MXCSR"
	EXPECTMEM R0+0x4a0, PAT, 256, "xsave: XMM0-15"
	EXPECT R0+0x600, $3, "xsave: XSTATE_BV"
	EXPECT R0+0x608, $0, "xsave: XCOMP_BV"
	EXPECTX 13, 0, .Lf_xsave, "xsave to [64n+16]"
	ret
case_xsave:
	mov $3, %eax
	xor %edx, %edx
	xrstor MEM
	mov $3, %eax
	xor %edx, %edx
	xsave MEM+0x400
	movw $0, MEM+0x406
	movq $0, MEM+0x408
	movq $0, MEM+0x410
	ARMR 1f
	mov $3, %eax
	xor %edx, %edx
.Lf_xsave:
	xsave MEM+0x810
1:	ret

/* xrstor: loads, init from XSTATE_BV = 0, RFBM = x87 only, #GP on a bad XSTATE_BV. */
chk_xrstor:
	call need_xsave
	call xsave_tpl
	movl $0x3f80, TPL+0x240+24      /* image 2: XSTATE_BV 0, MXCSR 0x3f80, XMM junk */
	mov $(TPL + 0x240 + 160), %edi
	mov $0xee, %al
	mov $256, %ecx
	rep stosb
	mov $TPL, %esi                  /* image 3: image 1 with XSTATE_BV bit 9 */
	mov $(TPL + 0x480), %edi
	mov $576, %ecx
	call memcpy
	movq $0x203, TPL+0x480+512
	movl $0x1f80, TPL+0xb20
	CASE case_xrstor
	call run_case
	EXPECTMEM R0+0x800, PAT, 256, "xrstor: XMM0-15"
	EXPECT32 R0+0xb00, $0x1fa0, "xrstor: MXCSR"
	EXPECT16 R0+0xb04, $0x027f, "xrstor: FCW"
	EXPECTMEM R0+0x900, TPL+0x800, 256, "xrstor XSTATE_BV=0: XMM0-15 zero"
	EXPECT32 R0+0xb08, $0x3f80, "xrstor XSTATE_BV=0: MXCSR still loaded"
	EXPECT16 R0+0xb0c, $0x037f, "xrstor XSTATE_BV=0: FCW init"
	EXPECTMEM R0+0xa00, TPL+0x800, 256, "xrstor RFBM=1: XMM0-15 kept"
	EXPECT32 R0+0xb10, $0x3f80, "xrstor RFBM=1: MXCSR kept"
	EXPECT16 R0+0xb14, $0x027f, "xrstor RFBM=1: FCW"
	EXPECTX 13, 0, .Lf_xrstor, "xrstor XSTATE_BV bit 9"
	EXPECT32 R0+0xb18, $0x3f80, "MXCSR after the failed xrstor"
	ret
case_xrstor:
	mov $3, %eax
	xor %edx, %edx
	xrstor MEM
	mov $(MEM + 0x800), %edi
	call dump_xmm
	stmxcsr MEM+0xb00
	fnstcw MEM+0xb04
	mov $3, %eax
	xor %edx, %edx
	xrstor MEM+0x240
	mov $(MEM + 0x900), %edi
	call dump_xmm
	stmxcsr MEM+0xb08
	fnstcw MEM+0xb0c
	mov $1, %eax
	xor %edx, %edx
	xrstor MEM
	mov $(MEM + 0xa00), %edi
	call dump_xmm
	stmxcsr MEM+0xb10
	fnstcw MEM+0xb14
	ARMR 1f
	mov $3, %eax
	xor %edx, %edx
.Lf_xrstor:
	xrstor MEM+0x480
1:	stmxcsr MEM+0xb18
	ldmxcsr MEM+0xb20
	ret

/* xsaveopt to a fresh area after xrstor. */
chk_xsaveopt:
	call need_xsave
	cmpb $0, has_xsaveopt(%rip)
	jne 1f
	SKIP "no XSAVEOPT: CPUID.(0DH,1):EAX[0] = 0"
1:	call xsave_tpl
	CASE case_xsaveopt
	call run_case
	EXPECTMEM R0+0x4a0, PAT, 256, "xsaveopt: XMM0-15"
	EXPECT32 R0+0x418, $0x1fa0, "xsaveopt: MXCSR"
	EXPECT R0+0x600, $3, "xsaveopt: XSTATE_BV"
	ret
case_xsaveopt:
	mov $3, %eax
	xor %edx, %edx
	xrstor MEM
	mov $3, %eax
	xor %edx, %edx
	xsaveopt MEM+0x400
	movw $0, MEM+0x406
	movq $0, MEM+0x408
	movq $0, MEM+0x410
	ret

/* xsavec (compacted form) and xrstor from it. */
chk_xsavec:
	call need_xsave
	cmpb $0, has_xsavec(%rip)
	jne 1f
	SKIP "no XSAVEC: CPUID.(0DH,1):EAX[1] = 0"
1:	call xsave_tpl
	CASE case_xsavec
	call run_case
	EXPECT R0+0x600, $3, "xsavec: XSTATE_BV"
	EXPECT R0+0x608, $0x8000000000000003, "xsavec: XCOMP_BV"
	EXPECTMEM R0+0x4a0, PAT, 256, "xsavec: XMM0-15"
	EXPECTMEM R0+0x800, PAT, 256, "xrstor (compacted): XMM0-15"
	ret
case_xsavec:
	mov $3, %eax
	xor %edx, %edx
	xrstor MEM
	mov $3, %eax
	xor %edx, %edx
	xsavec MEM+0x400
	movw $0, MEM+0x406
	movq $0, MEM+0x408
	movq $0, MEM+0x410
	call zero_xmm
	mov $3, %eax
	xor %edx, %edx
	xrstor MEM+0x400
	mov $(MEM + 0x800), %edi
	call dump_xmm
	ret

/* xsaves/xrstors (CPL0 only). */
chk_xsaves:
	call need_xsave
	cmpb $0, has_xsaves(%rip)
	jne 1f
	SKIP "no XSAVES: CPUID.(0DH,1):EAX[3] = 0"
1:	call xsave_tpl
	CASE case_xsaves
	movq $1, case_k_only(%rip)
	call run_case
	EXPECT R0+0x600, $3, "xsaves: XSTATE_BV"
	EXPECT R0+0x608, $0x8000000000000003, "xsaves: XCOMP_BV"
	EXPECTMEM R0+0x4a0, PAT, 256, "xsaves: XMM0-15"
	EXPECTMEM R0+0x800, PAT, 256, "xrstors: XMM0-15"
	EXPECTX 13, 0, .Lf_xrstors, "xrstors from a standard-form area"
	ret
case_xsaves:
	mov $3, %eax
	xor %edx, %edx
	xrstor MEM
	mov $3, %eax
	xor %edx, %edx
	xsaves MEM+0x400
	call zero_xmm
	mov $3, %eax
	xor %edx, %edx
	xrstors MEM+0x400
	mov $(MEM + 0x800), %edi
	call dump_xmm
	ARMR 1f
	mov $3, %eax
	xor %edx, %edx
.Lf_xrstors:
	xrstors MEM
1:	ret

/* Pages VS0 -> PS0, VS1 -> PS1 (PS1 below PS0): both zero but for two patterns. */
prep_straddle:
	mov $PS1, %edi
	xor %eax, %eax
	mov $1024, %ecx
	rep stosq
	mov $0xa1a2a3a4a5a6a7a8, %rax
	mov %rax, PS0+0xff8
	ret

/* Emulated accesses straddling two non-contiguous physical pages. */
chk_straddle:
	cmpb $0, has_popcnt(%rip)
	jne 1f
	SKIP "no POPCNT: CPUID.1:ECX[23] = 0"
1:	call case_begin
	CASE case_straddle, prep_straddle
	SETQ CIN+O_RAX, 0x1122334455667788
	call run_case
	EXPECT OUT0+O_R8, $0x55667788a5a6a7a8, "movq store: first page"
	EXPECT OUT0+O_R9, $0x0000000011223344, "movq store: second page"
	EXPECT OUT0+O_RBX, $0x1122334455667788, "movq load"
	EXPECT OUT0+O_RCX, $26, "popcnt m64"
	EXPECT OUT0+O_RDX, $0x55667788a5a6a7a8, "lddqu (low)"
	EXPECT R0+8, $0x0000000011223344, "lddqu (high)"
	ret

/* xsave/xrstor of an area straddling two non-contiguous physical pages. */
chk_straddle_xsave:
	call need_xsave
	call xsave_tpl
	CASE case_xsave_straddle, prep_straddle
	call run_case
	EXPECT OUT0+O_R8, $0x1fa0, "xsave: MXCSR in the first page"
	EXPECT OUT0+O_R9, PAT, "xsave: XMM0 in the second page"
	EXPECT OUT0+O_R10, $3, "xsave: XSTATE_BV in the second page"
	EXPECTMEM R0+0x800, PAT, 256, "xrstor: XMM0-15"
	ret
case_straddle:
	movq %rax, %xmm0
	movq %xmm0, VS0+0xffc
	mov PS0+0xff8, %r8
	mov PS1, %r9
	movq VS0+0xffc, %xmm1
	movq %xmm1, %rbx
	popcnt VS0+0xffc, %rcx
	movdqu VS0+0xff8, %xmm2         /* KVM: the expected value */
	movdqu %xmm2, MEM
	cmpb $0, has_sse3(%rip)
	je 1f
	lddqu VS0+0xff8, %xmm2
	movdqu %xmm2, MEM
1:	movq %xmm2, %rdx
	ret
case_xsave_straddle:
	mov $3, %eax
	xor %edx, %edx
	xrstor MEM
	mov $3, %eax
	xor %edx, %edx
	xsave VS0+0xfc0                 /* 64 bytes in VS0, 512 in VS1 */
	call zero_xmm
	mov $3, %eax
	xor %edx, %edx
	xrstor VS0+0xfc0
	mov $(MEM + 0x800), %edi
	call dump_xmm
	mov PS0+0xfc0+24, %r8d
	mov PS1+0x60, %r9
	mov PS1+0x1c0, %r10
	ret

/* popcnt rax, rax; jmp rcx, its bytes split 2 + 5 across VS0 | VS1. */
prep_insn_straddle:
	call prep_straddle
	movw $0x48f3, PS0+0xffe
	movl $0xffc0b80f, PS1
	movb $0xe1, PS1+4
	ret

/* An instruction whose bytes straddle two non-contiguous physical pages. */
chk_insn_straddle:
	cmpb $0, has_popcnt(%rip)
	jne 1f
	SKIP "no POPCNT: CPUID.1:ECX[23] = 0"
1:	call case_begin
	CASE case_insn_straddle, prep_insn_straddle
	SETQ CIN+O_RAX, 0x00ff00ff00ff00ff
	call run_case
	EXPECT OUT0+O_RAX, $32, "popcnt across the pages"
	EXPECT OUT0+O_XCNT, $0, "exceptions taken"
	ret
case_insn_straddle:
	lea 1f(%rip), %rcx
	mov $(VS0 + 0xffe), %edx
	jmp *%rdx
1:	ret

prep_pf:
	mov $PPF, %edi
	xor %eax, %eax
	mov $512, %ecx
	rep stosq
	mov $0x0f0f0f0f0f0f0f0f, %rax
	mov %rax, PPF+0x100
	ret
prep_pf_ro:
	call prep_pf
	movq $(PPF | PTE_RO), PTI(VPF)
	mov $VPF, %eax
	invlpg (%rax)
	ret

/* #PF from emulated accesses: the handler maps the page, the instruction is retried. */
chk_pf_retry:
	call case_begin
	SETQ CIN+O_RAX, 0x1122334455667788
	CASE case_pf_read, prep_pf
	call run_case
	EXPECTX 14, 0, .Lf_pf_read, "movq xmm, m64 from a page not present"
	EXPECT OUT0+O_CR2, $(VPF + 0x100), "read: cr2"
	EXPECT OUT0+O_RBX, $0x0f0f0f0f0f0f0f0f, "read: value after the retry"
	CASE case_pf_write, prep_pf
	call run_case
	EXPECTX 14, 2, .Lf_pf_write, "movq m64, xmm to a page not present"
	EXPECT OUT0+O_CR2, $(VPF + 0x108), "write: cr2"
	EXPECT OUT0+O_RBX, $0x1122334455667788, "write: memory after the retry"
	CASE case_pf_wp, prep_pf_ro
	call run_case
	EXPECTX 14, 3, .Lf_pf_wp, "movq m64, xmm to a read-only page"
	EXPECT OUT0+O_CR2, $(VPF + 0x110), "read-only: cr2"
	EXPECT OUT0+O_RBX, $0x1122334455667788, "read-only: memory after the retry"
	cmpb $0, has_cx16(%rip)
	je 1f
	CASE case_pf_cx16, prep_pf
	SETQ CIN+O_RBX, 0x3333333333333333
	SETQ CIN+O_RCX, 0x4444444444444444
	call run_case
	EXPECT OUT0+O_XCNT, $1, "lock cmpxchg16b on a page not present: exceptions taken"
	EXPECT OUT0+O_VEC, $14, "lock cmpxchg16b: vector"
	EXPECTL OUT0+O_XRIP, .Lf_pf_cx16, "lock cmpxchg16b: rip"
	EXPECT OUT0+O_CR2, $(VPF + 0x120), "lock cmpxchg16b: cr2"
	EXPECT OUT0+O_ERR, $2, "lock cmpxchg16b: error code"
	EXPECT OUT0+O_R8, $0x3333333333333333, "lock cmpxchg16b: memory after the retry"
	EXPECTM OUT0+O_RFL, $0x40, $0x40, "lock cmpxchg16b: ZF"
1:	ret
case_pf_read:
	ARMH pf_hook
.Lf_pf_read:
	movq VPF+0x100, %xmm0
	movq %xmm0, %rbx
	ret
case_pf_write:
	movq %rax, %xmm0
	ARMH pf_hook
.Lf_pf_write:
	movq %xmm0, VPF+0x108
	mov PPF+0x108, %rbx
	ret
case_pf_wp:
	movq %rax, %xmm0
	ARMH pf_hook
.Lf_pf_wp:
	movq %xmm0, VPF+0x110
	mov PPF+0x110, %rbx
	ret
case_pf_cx16:
	xor %eax, %eax
	xor %edx, %edx
	ARMH pf_hook
.Lf_pf_cx16:
	lock cmpxchg16b VPF+0x120
	mov PPF+0x120, %r8
	ret

prep_pf_straddle:
	mov $PPS0, %edi
	xor %eax, %eax
	mov $512, %ecx
	rep stosq
	mov $PPS1, %edi
	mov $512, %ecx
	rep stosq
	mov $0xa1a2a3a4a5a6a7a8, %rax
	mov %rax, PPS0+0xff8
	mov $0xb1b2b3b4b5b6b7b8, %rax
	mov %rax, PPS1
	movq $(PPS0 + 0xff8), pf_snap_addr(%rip)
	ret

/* An emulated access straddling into a page not present: CR2, nothing written before the retry. */
chk_pf_straddle:
	call case_begin
	SETQ CIN+O_RAX, 0x1122334455667788
	CASE case_pfs_write, prep_pf_straddle
	call run_case
	EXPECTX 14, 2, .Lf_pfs_write, "movq m64, xmm across into a page not present"
	EXPECT OUT0+O_CR2, $VPS1, "write: cr2"
	EXPECT OUT0+O_SNAP, $0xa1a2a3a4a5a6a7a8, "write: first page at the fault"
	EXPECT OUT0+O_R8, $0x55667788a5a6a7a8, "write: first page after the retry"
	EXPECT OUT0+O_R9, $0xb1b2b3b411223344, "write: second page after the retry"
	CASE case_pfs_read, prep_pf_straddle
	call run_case
	EXPECTX 14, 0, .Lf_pfs_read, "movq xmm, m64 across into a page not present"
	EXPECT OUT0+O_CR2, $VPS1, "read: cr2"
	EXPECT OUT0+O_RBX, $0xb5b6b7b8a1a2a3a4, "read: value after the retry"
	ret
case_pfs_write:
	movq %rax, %xmm0
	ARMH pf_hook
.Lf_pfs_write:
	movq %xmm0, VPS0+0xffc
	mov PPS0+0xff8, %r8
	mov PPS1, %r9
	ret
case_pfs_read:
	ARMH pf_hook
.Lf_pfs_read:
	movq VPS0+0xffc, %xmm0
	movq %xmm0, %rbx
	ret

prep_no_osfxsr:
	mov %cr4, %rax
	and $~CR4_OSFXSR, %rax
	mov %rax, %cr4
	ret
prep_no_osxsave:
	mov %cr4, %rax
	and $~CR4_OSXSAVE, %rax
	mov %rax, %cr4
	ret
prep_em:
	mov %cr0, %rax
	or $CR0_EM, %rax
	mov %rax, %cr0
	ret

/* Runs a case that must raise #UD at its .Lf_ label. */
.macro UDRUN name, prep=0, what
	CASE case_\name, \prep
	call run_case
	EXPECTX 6, 0, .Lf_\name, "\what"
.endm

/* #UD: lock on instructions that take none. */
chk_ud:
	call case_begin
	UDRUN lock_popcnt, 0, "lock popcnt"
	UDRUN lock_cx16_reg, 0, "lock cmpxchg16b with a register operand"
	UDRUN lock_movq, 0, "lock movq xmm, m64"
	ret

/*
 * #UD: SSE with CR4.OSFXSR clear or CR0.EM set, xgetbv with CR4.OSXSAVE
 * clear. CPL0 only: code at CPL3 on the development machines runs with
 * the host's CR0/CR4 FPU bits.
 */
chk_ud_cr:
	call case_begin
	movq $1, case_k_only(%rip)
	UDRUN pxor_nofxsr, prep_no_osfxsr, "pxor with CR4.OSFXSR clear"
	UDRUN ldmxcsr_nofxsr, prep_no_osfxsr, "ldmxcsr with CR4.OSFXSR clear"
	UDRUN movq_em, prep_em, "movq xmm, r64 with CR0.EM set"
	cmpb $0, has_xsave(%rip)
	je 1f
	UDRUN xgetbv_noxsave, prep_no_osxsave, "xgetbv with CR4.OSXSAVE clear"
1:	ret
FAULTCASE lock_popcnt
	.byte 0xf0, 0xf3, 0x48, 0x0f, 0xb8, 0xc0
ENDFAULT
FAULTCASE lock_cx16_reg
	.byte 0xf0, 0x48, 0x0f, 0xc7, 0xc9
ENDFAULT
FAULTCASE lock_movq
	.byte 0xf0, 0xf3, 0x0f, 0x7e, 0x04, 0x25
	.long MEM
ENDFAULT
FAULTCASE pxor_nofxsr
	pxor %xmm0, %xmm0
ENDFAULT
FAULTCASE ldmxcsr_nofxsr
	ldmxcsr MEM
ENDFAULT
FAULTCASE movq_em
	movq %rax, %xmm0
ENDFAULT
FAULTCASE xgetbv_noxsave
	xgetbv
ENDFAULT

prep_ts:
	mov %cr0, %rax
	or $CR0_TS, %rax
	mov %rax, %cr0
	ret

/* Runs a case that must raise #NM at its .Lf_ label once, then complete. */
.macro NMRUN name, what
	CASE case_\name, prep_ts
	call run_case
	EXPECTX 7, 0, .Lf_\name, "\what"
.endm

/*
 * #NM with CR0.TS set: the handler clears TS, the instruction is retried
 * and completes. CPL0 only: CR0.TS does not reach code at CPL3 on the
 * development machines.
 */
chk_nm:
	call case_begin
	movq $1, case_k_only(%rip)
	SETQ CIN+O_RAX, 0x1122334455667788
	movl $0x1f80, TPL
	NMRUN nm_pxor, "pxor"
	EXPECT OUT0+O_RBX, $0, "pxor: result after the retry"
	NMRUN nm_movq, "movq xmm, r64"
	EXPECT OUT0+O_RBX, $0x1122334455667788, "movq: result after the retry"
	NMRUN nm_ldmxcsr, "ldmxcsr"
	NMRUN nm_fwait, "fwait"
	NMRUN nm_movdqa, "movdqa"
	cmpb $0, has_xsave(%rip)
	je 1f
	NMRUN nm_xsave, "xsave"
1:	ret
case_nm_pxor:
	ARMH nm_hook
.Lf_nm_pxor:
	pxor %xmm3, %xmm3
	movq %xmm3, %rbx
	ret
case_nm_movq:
	ARMH nm_hook
.Lf_nm_movq:
	movq %rax, %xmm3
	movq %xmm3, %rbx
	ret
case_nm_ldmxcsr:
	ARMH nm_hook
.Lf_nm_ldmxcsr:
	ldmxcsr MEM
	ret
case_nm_fwait:
	ARMH nm_hook
.Lf_nm_fwait:
	fwait
	ret
case_nm_movdqa:
	ARMH nm_hook
.Lf_nm_movdqa:
	movdqa MEM, %xmm3
	ret
case_nm_xsave:
	ARMH nm_hook
	xor %eax, %eax                  /* RFBM 0: nothing to compare but the #NM */
	xor %edx, %edx
.Lf_nm_xsave:
	xsave MEM+0x400
	ret

/* A jump to a page that is not mapped: #PF for the fetch. */
chk_bad_rip:
	call case_begin
	CASE case_bad_rip
	call run_case
	EXPECT OUT0+O_XCNT, $1, "exceptions taken"
	EXPECT OUT0+O_VEC, $14, "vector"
	EXPECT OUT0+O_ERR, $0x10, "error code"
	EXPECT OUT0+O_CR2, $VNX, "cr2"
	EXPECT OUT0+O_XRIP, $VNX, "rip"
	CASE case_noncanonical
	call run_case
	EXPECT OUT0+O_XCNT, $1, "non-canonical target: exceptions taken"
	EXPECT OUT0+O_VEC, $13, "non-canonical target: vector"
	EXPECT OUT0+O_ERR, $0, "non-canonical target: error code"
	ret
case_bad_rip:
	ARMR 1f
	mov $VNX, %eax
	jmp *%rax
1:	ret
case_noncanonical:
	ARMR 1f
	mov $0x0000800000000000, %rax
	jmp *%rax
1:	ret

prep_code_pages:
	mov $PC0, %edi
	xor %eax, %eax
	mov $512, %ecx
	rep stosq
	mov $PC2, %edi
	mov $512, %ecx
	rep stosq
	movw $0x48f3, PC0+0xffe         /* popcnt rax, rax: 2 of its 5 bytes */
	movl $0xb80f48f3, PC2+0xffb     /* popcnt rax, rax: all 5, ending at the page end */
	movb $0xc0, PC2+0xfff
	ret

/* Instructions at the end of a page whose next page is not mapped. */
chk_bad_rip_straddle:
	cmpb $0, has_popcnt(%rip)
	jne 1f
	SKIP "no POPCNT: CPUID.1:ECX[23] = 0"
1:	call case_begin
	SETQ CIN+O_RAX, 0x00ff00ff00ff00ff
	CASE case_rip_split, prep_code_pages
	call run_case
	EXPECT OUT0+O_XCNT, $1, "split instruction: exceptions taken"
	EXPECT OUT0+O_VEC, $14, "split instruction: vector"
	EXPECT OUT0+O_ERR, $0x10, "split instruction: error code"
	EXPECT OUT0+O_CR2, $(VC0 + 0x1000), "split instruction: cr2"
	EXPECT OUT0+O_XRIP, $(VC0 + 0xffe), "split instruction: rip"
	EXPECT OUT0+O_RAX, $0x00ff00ff00ff00ff, "split instruction: rax untouched"
	CASE case_rip_fits, prep_code_pages
	call run_case
	EXPECT OUT0+O_RAX, $32, "instruction ending at the page end: result"
	EXPECT OUT0+O_XCNT, $1, "instruction ending at the page end: exceptions taken"
	EXPECT OUT0+O_VEC, $14, "next instruction: vector"
	EXPECT OUT0+O_ERR, $0x10, "next instruction: error code"
	EXPECT OUT0+O_CR2, $(VC2 + 0x1000), "next instruction: cr2"
	EXPECT OUT0+O_XRIP, $(VC2 + 0x1000), "next instruction: rip"
	ret
case_rip_split:
	ARMR 1f
	mov $(VC0 + 0xffe), %ecx
	jmp *%rcx
1:	ret
case_rip_fits:
	ARMR 1f
	mov $(VC2 + 0xffb), %ecx
	jmp *%rcx
1:	ret

/* Runs a case that must raise vector at its .Lf_ label. */
.macro XRUN name, vec, err, what
	CASE case_\name
	call run_case
	EXPECTX \vec, \err, .Lf_\name, "\what"
.endm

/* Bytes no x86-64 CPU decodes: #UD (or #GP for more than 15 bytes), as the CPU says at CPL3. */
chk_ud_invalid:
	call case_begin
	XRUN ud1, 6, 0, "ud1 (0f b9)"
	XRUN ud0, 6, 0, "ud0 (0f ff)"
	XRUN op0f04, 6, 0, "0f 04"
	XRUN op0f0a, 6, 0, "0f 0a"
	XRUN ud2, 6, 0, "ud2 (0f 0b)"
	XRUN salc, 6, 0, "d6 (salc, not in 64-bit mode)"
	XRUN overlong, 13, 0, "16 bytes (15 prefixes and nop)"
	ret
FAULTCASE ud1
	.byte 0x0f, 0xb9, 0xc0
ENDFAULT
FAULTCASE ud0
	.byte 0x0f, 0xff, 0xc0
ENDFAULT
FAULTCASE op0f04
	.byte 0x0f, 0x04
ENDFAULT
FAULTCASE op0f0a
	.byte 0x0f, 0x0a
ENDFAULT
FAULTCASE ud2
	.byte 0x0f, 0x0b
ENDFAULT
FAULTCASE salc
	.byte 0xd6
ENDFAULT
FAULTCASE overlong
	.fill 15, 1, 0x66
	.byte 0x90
ENDFAULT

/* Emulated accesses that reach MMIO: RAM + the HPET's GCAP_ID, and all-MMIO (CPL0 only). */
chk_mmio_span:
	cmpb $0, has_popcnt(%rip)
	jne 1f
	SKIP "no POPCNT: CPUID.1:ECX[23] = 0"
1:	cmpb $0, has_sse3(%rip)
	jne 2f
	SKIP "no SSE3 (lddqu): CPUID.1:ECX[0] = 0"
2:	mov $HPET, %ecx
	mov (%rcx), %rbx                /* GCAP_ID, read by KVM's emulator */
	mov %rbx, mmio_gcap(%rip)
	call case_begin
	CASE case_mmio
	movq $1, case_k_only(%rip)
	call run_case
	mov mmio_gcap(%rip), %rbx
	mov %rbx, %rcx                  /* (EXPECT takes got in rax, want in rdx) */
	shl $32, %rcx
	or $0x01234567, %rcx
	EXPECT OUT0+O_RAX, %rcx, "movq across RAM | MMIO"
	EXPECT OUT0+O_RDX, $0x0123456789abcdef, "movdqu across RAM | MMIO (low, KVM)"
	EXPECT R0+8, %rbx, "movdqu across RAM | MMIO (high, KVM)"
	EXPECT OUT0+O_R8, $0x0123456789abcdef, "lddqu across RAM | MMIO (low)"
	EXPECT R0+0x18, %rbx, "lddqu across RAM | MMIO (high)"
	EXPECT OUT0+O_R9, %rbx, "movq from MMIO"
	mov %rbx, %rax
	call sw_popcnt
	mov %rax, %rcx
	EXPECT OUT0+O_RCX, %rcx, "popcnt from MMIO"
	ret
case_mmio:
	mov $0x0123456789abcdef, %rax
	mov %rax, PMM0+0xff8
	movq VMM0+0xffc, %xmm0
	movq %xmm0, %rax
	movdqu VMM0+0xff8, %xmm1
	movdqu %xmm1, MEM
	movq %xmm1, %rdx
	lddqu VMM0+0xff8, %xmm2
	movdqu %xmm2, MEM+0x10
	movq %xmm2, %r8
	movq VMM1, %xmm3
	movq %xmm3, %r9
	popcnt VMM1, %rcx
	ret

/* int1 (icebp): #DB, a trap: the handler returns after it. */
chk_int1:
	ARM0
	.byte 0xf1
.Lint1_next:
	EXPECT exc_vec(%rip), $1, "int1: vector"
	EXPECTL exc_rip(%rip), .Lint1_next, "int1: return rip"
	EXPECT exc_count(%rip), $1, "int1: exceptions taken"
	ret

/* ------------------------------------------------------------------ */
/* Two vCPUs on one 16-byte counter: BSP at CPL0 (emulated), AP at CPL3 (native). */

/* Busy-waits about rcx loop turns. */
delay:
	pause
	dec %rcx
	jnz delay
	ret

chk_smp_cas:
	cmpb $0, has_cx16(%rip)
	jne 1f
	SKIP "no CMPXCHG16B: CPUID.1:ECX[13] = 0"
1:	mov $SMP, %edi
	xor %eax, %eax
	mov $512, %ecx
	rep stosq
	movq $-1, S_CNT+8
	lea ap_tramp(%rip), %rsi
	mov $AP_TRAMP, %edi
	mov $(ap_tramp_end - ap_tramp), %ecx
	call memcpy
	mov $LAPIC, %edi
	movl $0x1ff, 0xf0(%rdi)         /* SVR: APIC enabled, spurious vector 0xff */
	movl $0, 0x310(%rdi)
	movl $0xc4500, 0x300(%rdi)      /* INIT, level assert, all excluding self */
	mov $2000, %ecx
	call delay
	mov $LAPIC, %edi
	movl $0xc4608, 0x300(%rdi)      /* SIPI, vector 0x08 */
	mov $200, %ecx
	call delay
	mov $LAPIC, %edi
	movl $0xc4608, 0x300(%rdi)
	mov $1000000, %ecx
2:	cmpq $1, S_APSTATE
	je 3f
	pause
	dec %ecx
	jnz 2b
	cmpq $0, S_APFAULT
	jne .Lsmp_apfault
	FAIL "the AP did not reach user mode"
3:	cmpq $0, self_test(%rip)
	jne 4f
	call bsp_hammer
	jmp 5f
4:	lea bsp_hammer(%rip), %rdi      /* self-test: the BSP's loop at CPL3 too */
	mov $BSP_USTACK, %esi
	call run_user
5:	mov hammer_n(%rip), %r12
	mov S_BSPFAIL, %r13
	mov $3000000, %ecx
6:	cmpq $1, S_APDONE
	je 7f
	cmpq $0, S_APFAULT
	jne .Lsmp_apfault
	pause
	dec %ecx
	jnz 6b
	FAIL "the AP did not finish"
7:	EXPECT S_BSPTORN, $0, "torn values seen by the BSP"
	EXPECT S_APTORN, $0, "torn values seen by the AP"
	EXPECT S_APITERS, %r12, "AP increments"
	lea (%r12,%r12), %rbx
	EXPECT S_CNT, %rbx, "count"
	not %rbx
	EXPECT S_CNT+8, %rbx, "count (high, the complement)"
	/* note: "(2N = .., BSP CAS failures ..)" */
	mov $SCRATCH, %edi
	lea smp_note1(%rip), %rsi
	call strcpy
	lea (%r12,%r12), %rax
	call strdec
	lea smp_note2(%rip), %rsi
	call strcpy
	mov %r13, %rax
	call strdec
	movw $')', (%rdi)
	mov $SCRATCH, %eax
	mov %rax, note_str(%rip)
	ret
.Lsmp_apfault:
	PUTS "FAIL the AP took an exception; frame words "
	mov S_APFAULT+8, %rax
	call puthex
	PUTS " "
	mov S_APFAULT+16, %rax
	call puthex
	PUTS "\n"
	movq $1, check_status(%rip)
	jmp check_aborted

/*
 * The BSP's half: N increments of the counter by lock cmpxchg16b, each
 * published in S_PROGRESS. At CPL0 (returns) or, in the self-test, at CPL3
 * (leaves through user_exit).
 */
bsp_hammer:
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	mov hammer_n(%rip), %r12
	xor %r13d, %r13d                /* CAS failures */
	xor %r14d, %r14d                /* torn values seen */
	xor %r15d, %r15d                /* increments done */
	movq $1, S_GO
	mov S_CNT, %rax
	mov S_CNT+8, %rdx
1:	lea 1(%rax), %rbx
	mov %rbx, %rcx
	not %rcx
	lock cmpxchg16b S_CNT
	jz 2f
	inc %r13
	mov %rax, %r8
	not %r8
	cmp %r8, %rdx
	je 1b
	inc %r14
	jmp 1b
2:	inc %r15
	mov %r15, S_PROGRESS
	mov %rbx, %rax
	mov %rcx, %rdx
	cmp %r12, %r15
	jb 1b
	mov %r13, S_BSPFAIL
	mov %r14, S_BSPTORN
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	cmpq $0, self_test(%rip)
	jne user_exit
	ret

/* strcpy: rsi -> rdi without the NUL (rdi advanced); strdec: rax in decimal at rdi. */
strcpy:
	lodsb
	test %al, %al
	jz 1f
	stosb
	jmp strcpy
1:	ret
strdec:
	push %rbx
	mov %rsp, %rbx
	mov $10, %ecx
1:	xor %edx, %edx
	div %rcx
	add $'0', %dl
	dec %rsp
	mov %dl, (%rsp)
	test %rax, %rax
	jnz 1b
2:	mov (%rsp), %al
	inc %rsp
	stosb
	cmp %rbx, %rsp
	jb 2b
	pop %rbx
	ret

/* The AP's trampoline, copied to AP_TRAMP: real mode -> long mode. */
	.code16
ap_tramp:
	cli
	xor %ax, %ax
	mov %ax, %ds
	lgdtl AP_TRAMP + (ap_tramp_gdtr - ap_tramp)
	mov $(0x20 | 0x200 | 0x400), %eax /* PAE | OSFXSR | OSXMMEXCPT */
	mov %eax, %cr4
	mov $PML4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx
	rdmsr
	or $0x900, %eax                 /* LME | NXE */
	wrmsr
	mov $CR0_CANON, %eax
	mov %eax, %cr0
	ljmpl $KCS, $ap_long
	.balign 8
ap_tramp_gdtr:
	.word gdt_end - gdt - 1
	.long gdt
ap_tramp_end:
	.code64

ap_long:
	mov $KDS, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov $AP_STACK, %esp
	lidt ap_idtr(%rip)
	mov $TSS1, %eax
	ltr %ax
	pushq $USEL_DS
	pushq $AP_USTACK
	pushq $2
	pushq $USEL_CS
	lea ap_user(%rip), %rax
	push %rax
	iretq

/* Every AP vector: record (unless it is the AP saying it is done) and halt. */
ap_trap:
	cmpq $1, S_APDONE
	je 1f
	mov (%rsp), %rax
	mov %rax, S_APFAULT+8
	mov 8(%rsp), %rax
	mov %rax, S_APFAULT+16
	movq $1, S_APFAULT
1:	cli
	hlt
	jmp 1b

/*
 * The AP at CPL3: its i-th increment waits for the BSP's i-th, then a
 * random delay of up to 64 Ki TSC cycles, so its CAS lands anywhere in the
 * BSP's next emulated one.
 */
ap_user:
	movq $1, S_APSTATE
1:	cmpq $0, S_GO
	jne 2f
	pause
	jmp 1b
2:	mov hammer_n(%rip), %r12
	xor %r15d, %r15d
	xor %r14d, %r14d
	mov $0x9e3779b97f4a7c15, %r11
3:	cmp S_PROGRESS, %r15
	jbe 4f
	pause
	jmp 3b
4:	mov %r11, %rax                  /* xorshift64 */
	shl $13, %rax
	xor %rax, %r11
	mov %r11, %rax
	shr $7, %rax
	xor %rax, %r11
	mov %r11, %rax
	shl $17, %rax
	xor %rax, %r11
	mov %r11, %r9
	and $0xffff, %r9d
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	lea (%rax,%r9), %r8
5:	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	cmp %r8, %rax
	jb 5b
	mov S_CNT, %rax
	mov S_CNT+8, %rdx
6:	lea 1(%rax), %rbx
	mov %rbx, %rcx
	not %rcx
	lock cmpxchg16b S_CNT
	jz 7f
	mov %rax, %r8
	not %r8
	cmp %r8, %rdx
	je 6b
	inc %r14
	jmp 6b
7:	inc %r15
	cmp %r12, %r15
	jb 3b
	mov %r15, S_APITERS
	mov %r14, S_APTORN
	movq $1, S_APDONE
	int3

/* ------------------------------------------------------------------ */
/* The check table: bit i of the mask runs entry i. */

.macro CHECK name
	.quad chk_\name
	.quad .Lname_\name
	STR .Lname_\name, "\name"
.endm

	.balign 16
fallback_checks:
	CHECK int3              /* 0 */
	CHECK de                /* 1 */
	CHECK clac_stac         /* 2 */
	CHECK popcnt            /* 3 */
	CHECK fwait             /* 4 */
	CHECK fwait_mf          /* 5 */
	CHECK mxcsr             /* 6 */
	CHECK mxcsr_gp          /* 7 */
	CHECK cmpxchg8b         /* 8 */
	CHECK cmpxchg16b        /* 9 */
	CHECK cmpxchg16b_gp     /* 10 */
	CHECK sse_moves         /* 11 */
	CHECK fxsave            /* 12 */
	CHECK xsetbv            /* 13 */
	CHECK xgetbv            /* 14 */
	CHECK xsave             /* 15 */
	CHECK xrstor            /* 16 */
	CHECK xsaveopt          /* 17 */
	CHECK xsavec            /* 18 */
	CHECK xsaves            /* 19 */
	CHECK straddle          /* 20 */
	CHECK straddle_xsave    /* 21 */
	CHECK insn_straddle     /* 22 */
	CHECK pf_retry          /* 23 */
	CHECK pf_straddle       /* 24 */
	CHECK ud                /* 25 */
	CHECK ud_cr             /* 26 */
	CHECK nm                /* 27 */
	CHECK smp_cas           /* 28 */
	CHECK bad_rip           /* 29: bad input and edge cases, not in the default mask */
	CHECK bad_rip_straddle  /* 30 */
	CHECK ud_invalid        /* 31 */
	CHECK mmio_span         /* 32 */
	CHECK int1              /* 33 */
	CHECK int_imm           /* 34 */
fallback_checks_end:
	.equ NCHECKS, (fallback_checks_end - fallback_checks) / 16
	.equ DEFAULT_MASK, (1 << 29) - 1

/* ------------------------------------------------------------------ */
/* Data (in the image: the image's pages are RAM, mapped writable). */

	.pushsection .text, 2
	.balign 16
gdt:
	.quad 0
	.quad 0x00af9a000000ffff        /* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff        /* 0x10 kernel data */
	.quad 0x00cff2000000ffff        /* 0x18 user data */
	.quad 0x00affa000000ffff        /* 0x20 user code, 64-bit */
	.quad 0, 0                      /* 0x28 BSP TSS */
	.quad 0, 0                      /* 0x38 AP TSS */
gdt_end:
	.balign 8
	.word 0, 0, 0
gdtr:
	.word gdt_end - gdt - 1
	.quad gdt
	.word 0, 0, 0
bsp_idtr:
	.word 32 * 16 - 1
	.quad BSP_IDT
	.word 0, 0, 0
ap_idtr:
	.word 32 * 16 - 1
	.quad AP_IDT
	.balign 16
tss0:
	.long 0
	.quad BSP_RSP0                  /* RSP0 */
	.fill 104 - 12, 1, 0
	.balign 16
tss1:
	.long 0
	.quad AP_RSP0
	.fill 104 - 12, 1, 0
	.balign 8
exc_armed: .quad 0
exc_resume: .quad 0
exc_hook: .quad 0
exc_vec: .quad 0
exc_err: .quad 0
exc_rip: .quad 0
exc_cs: .quad 0
exc_cr2: .quad 0
exc_count: .quad 0
in_exc: .quad 0
pf_snap_addr: .quad 0
pf_snap: .quad 0
check_rsp: .quad 0
check_status: .quad 0
cur_check: .quad 0
note_str: .quad 0
n_ok: .quad 0
n_fail: .quad 0
n_skip: .quad 0
user_ret_rsp: .quad 0
case_fn: .quad 0
case_prep: .quad 0
case_cpl: .quad 0
case_k_only: .quad 0
cr4_canon: .quad 0
xcr0_full: .quad 1
mxcsr_mask: .quad 0
mmio_gcap: .quad 0
vendor: .fill 16, 1, 0
has_sse3: .byte 0
has_cx16: .byte 0
has_popcnt: .byte 0
has_xsave: .byte 0
has_smap: .byte 0
has_xsaveopt: .byte 0
has_xsavec: .byte 0
has_xgetbv1: .byte 0
has_xsaves: .byte 0
	.balign 8
field_names:
	.ascii "rax\0\0\0\0\0rbx\0\0\0\0\0rcx\0\0\0\0\0rdx\0\0\0\0\0"
	.ascii "rsi\0\0\0\0\0rdi\0\0\0\0\0rbp\0\0\0\0\0r8\0\0\0\0\0\0"
	.ascii "r9\0\0\0\0\0\0r10\0\0\0\0\0r11\0\0\0\0\0r12\0\0\0\0\0"
	.ascii "r13\0\0\0\0\0r14\0\0\0\0\0r15\0\0\0\0\0rflags\0\0"
	.ascii "vector\0\0error\0\0\0cr2\0\0\0\0\0exc-rip\0"
	.ascii "exc-cnt\0pf-snap\0"
smp_note1: .asciz "(2N = "
smp_note2: .asciz ", BSP CAS failures "
	.popsection

	.section .note.GNU-stack, "", @progbits
