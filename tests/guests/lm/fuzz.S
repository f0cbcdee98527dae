/*
 * fuzz.S: the guest side of dhyve's device fuzzer (tools/fuzz.ts,
 * tests/fuzz_test.ts). A flat x86-64 binary linked and loaded at 0x10000,
 * entered by the raw payload's long64 mode; 16 MiB of RAM are plenty.
 *
 * It issues a seeded stream of random port and MMIO accesses of every
 * width to every device window dhyve models (the `windows` table below:
 * UARTs, RTC/CMOS, i8042, ACPI PM block, POST, PCI configuration through
 * mechanism #1 and ECAM, the PCI test device's BARs with its MSI-X table
 * and PBA, the HPET, unclaimed holes) and ends through the debug-exit port.
 * The harness replays the same stream in TypeScript (tools/fuzz.ts reads
 * the table out of this binary), so a seed names an exact list of
 * operations.
 *
 * Header (little-endian 64-bit words after the magic; the harness patches
 * them):
 *   8  "DHYVEFZ1"
 *   16 seed
 *   24 operations per vCPU
 *   32 flags: bit 0 interrupts enabled (8259s programmed and unmasked,
 *      LAPIC enabled, IF set before every operation; every handler EOIs
 *      the LAPIC and both 8259s and returns with IF clear, so at most one
 *      interrupt is taken per operation and a stuck level-triggered line
 *      cannot starve the loop); bit 1 two vCPUs: the BSP starts the AP with
 *      INIT-SIPI-SIPI and both run the loop, on different PRNG streams
 *   40 stop: when not 0, each vCPU runs at most this many operations (to
 *      find the shortest failing prefix)
 *   48 raw shift k: when not 0, a port write skips the VM-ending fix-ups
 *      below with probability 2^-k (so a run may end by the guest's own
 *      reset or poweroff request, a valid outcome)
 *   56 byte offset of the windows table, 64 its size in bytes, 72 the size
 *      of one entry
 *
 * PRNG: splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom
 * number generators", OOPSLA 2014). vCPU c starts at seed + c *
 * 0xd1b54a32d192ed03 and draws state += 0x9e3779b97f4a7c15, then mixes.
 *
 * One operation (fuzz_op):
 *   r1 = next(): bits 0-7 choose the window (256-entry lookup built from
 *   the table's cumulative weights), 8-9 the width (the entry's widths[]),
 *   10 write (1) or read, 11-13 the value class (0: 0, 1: all ones,
 *   2: r2 & 0xf, 3: 1 << (r2 & 63), 4: r2 & 0xff, 5-7: r2), 14 align the
 *   offset down to the width, 15-30 the raw test ((r1 & rawmask) == 0,
 *   rawmask = (2^k - 1) << 15), 32-63 the offset (& the entry's mask);
 *   in port windows that allow it, bit 63 makes it string I/O (rep
 *   outs/ins) of r1[59:56] + 1 elements;
 *   r2 = next(): the value (masked to the width);
 *   r3 = next(), only for ECAM and mechanism #1 operations: the function
 *   and register (see cfg_addr).
 * Each operation folds into a per-vCPU FNV-1a-style hash: x = window |
 * width << 8 | write << 12 | raw << 13 | offset << 16 (for mechanism #1 the
 * CONFIG_ADDRESS value first), then the value written; the guest prints
 * the hashes and the harness compares them with its replay.
 *
 * Fix-ups on writes, so that a run neither ends nor loses the guest by
 * itself:
 *   - message data (MSI capability data at config 0x4c, MSI-X table data
 *     at 0x08 + 16n, HPET Tn_FSB_INT_VAL at 0x110 + 32n, by offset in the
 *     4 KiB page or config space): vector byte |= 0x20 (a vector >= 32),
 *     delivery mode bits 10:8 cleared (fixed), so that no message is an
 *     INIT, SMI, NMI or an exception vector (Intel SDM Vol. 3A 11.11.2);
 *     mechanism #1 data writes whose register is unknown (a write to
 *     0xCFC-0xCFF outside a CONFIG_ADDRESS + CONFIG_DATA pair) are fixed as
 *     if they were at 0x4c;
 *   - unless the operation is raw: port 0xCF9 RST_CPU (bit 2) cleared;
 *     0x64 commands F0-FE with bit 0 clear (pulse reset) get bit 0 set;
 *     0x60 bit 0 set (an output-port write never pulls the reset line);
 *     PM1a_CNT SLP_EN (0x404 bit 13, 0x405 bit 5) cleared.
 * Port accesses are decoded by their first port (dhyve's PortBus), so the
 * fix-ups key on the first port.
 *
 * The PCI configuration pairs (and all accesses to 0xCF8-0xCFF) hold a
 * spinlock, as OSes do (Linux's pci_config_lock): with two vCPUs,
 * CONFIG_ADDRESS is shared state. The "restore" operation writes the test
 * device's BARs and command register back to their boot values (the
 * stream moves them now and then).
 *
 * COM1 output: at boot "fuzz boot seed=.. ops=.. flags=.. bar0=.. bar1=..
 * prng=.." (prng: xor of the first 16 outputs of vCPU 0's stream), at the
 * end (COM1 re-initialised first) "fuzz done ops=N o0=.. h0=.. [o1=..
 * h1=..] irqs=.. nmis=..", then debug-exit 0x10 (status 33). An
 * exception prints "fuzz exception V frame W1 W2 cpu C" and exits 0x11
 * (status 35); an AP that does not come up, "fuzz ap timeout", 0x13
 * (status 39).
 */

#define FLAG_IRQ 1
#define FLAG_SMP 2

#define KCS 0x08
#define KDS 0x10

#define LAPIC 0xfee00000
#define ECAM 0xe0000000
#define TESTDEV_CFG (ECAM + (3 << 15))  /* 00:03.0 */

#define AP_TRAMP 0x8000                 /* SIPI vector 0x08 */
#define PML4 0x100000
#define PDPT 0x101000
#define PD 0x102000                     /* 4 pages: 0-4 GiB in 2 MiB pages */
#define IDT 0x106000
#define SELTAB 0x107000                 /* 256 bytes: selector -> window */
#define FIXTAB 0x108000                 /* 4096 bytes: 1 vector byte, 2 mode byte */
#define STRBUF 0x109000                 /* 256 bytes per vCPU: string I/O buffers */
#define BSP_STACK 0x120000
#define AP_STACK 0x130000

#define CR0_LM 0x80010033               /* PG WP NE ET MP PE */
#define GAMMA 0x9e3779b97f4a7c15
#define MIX1 0xbf58476d1ce4e5b9
#define MIX2 0x94d049bb133111eb
#define CPU_STRIDE 0xd1b54a32d192ed03
#define FNV_BASIS 0xcbf29ce484222325
#define FNV_PRIME 0x100000001b3

/* Window kinds. */
#define K_PORT 0
#define K_MMIO 1
#define K_BAR 2         /* flags = BAR index; base = offset in the BAR */
#define K_ECAM 3
#define K_CFG1 4
#define K_RESTORE 5
/* Port window flags. */
#define F_LOCK 1        /* hold the PCI configuration lock */
#define F_STRING 2      /* string I/O too (no fix-ups in the window) */

	.code64
	.text
	.globl _start
_start:
	jmp entry
	.balign 8
	.ascii "DHYVEFZ1"               /* 8 */
seed:	.quad 1                         /* 16 */
nops:	.quad 1000                      /* 24 */
flags:	.quad 0                         /* 32 */
stop:	.quad 0                         /* 40 */
raw_shift: .quad 0                      /* 48 */
	.quad windows - _start          /* 56 */
	.quad windows_end - windows     /* 64 */
	.quad 24                        /* 72 */

entry:
	cli
	cld
	mov $BSP_STACK, %esp
	mov $0xff, %al                  /* mask both 8259s until they are set up */
	out %al, $0x21
	out %al, $0xa1
	call setup_paging
	call setup_gdt
	call setup_idt
	call setup_tables
	call uart_init
	call read_testdev
	call banner
	call setup_pic
	mov $LAPIC, %edi
	movl $0x1ff, 0xf0(%rdi)         /* SVR: APIC enabled, spurious vector 0xff */
	movl $0x700, 0x350(%rdi)        /* LVT LINT0: ExtINT (the 8259s) */
	movl $0x400, 0x360(%rdi)        /* LVT LINT1: NMI */
	movl $0, 0x80(%rdi)             /* TPR 0 */
	testb $FLAG_SMP, flags(%rip)
	jz 1f
	call start_ap
1:	xor %ebp, %ebp
	call fuzz_loop
	testb $FLAG_SMP, flags(%rip)
	jz 3f
2:	cmpq $0, ap_done(%rip)          /* the AP's ops and hash are in */
	jne 3f
	pause
	jmp 2b
3:	cli
	call uart_init
	call report
	mov $0x10, %al
	out %al, $0xf4
4:	cli
	hlt
	jmp 4b

/* ------------------------------------------------------------------ */
/* Machine setup. */

/* Identity map of 0-4 GiB in 2 MiB pages (MMIO included). */
setup_paging:
	mov $PML4, %edi
	xor %eax, %eax
	mov $6 * 4096 / 8, %ecx
	rep stosq
	movq $(PDPT | 3), PML4
	movq $(PD | 3), PDPT
	movq $((PD + 0x1000) | 3), PDPT + 8
	movq $((PD + 0x2000) | 3), PDPT + 16
	movq $((PD + 0x3000) | 3), PDPT + 24
	mov $PD, %edi
	mov $0x83, %eax                 /* P | RW | PS */
	mov $2048, %ecx
1:	mov %rax, (%rdi)
	add $8, %rdi
	add $0x200000, %rax
	loop 1b
	mov $PML4, %eax
	mov %rax, %cr3
	ret

setup_gdt:
	lgdt gdtr(%rip)
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
	ret

/* ecx = vector, rax = handler: an interrupt gate, DPL 0. */
set_gate:
	mov %ecx, %edi
	shl $4, %edi
	add $IDT, %edi
	mov %ax, (%rdi)
	movw $KCS, 2(%rdi)
	movw $0x8e00, 4(%rdi)
	shr $16, %rax
	mov %ax, 6(%rdi)
	shr $16, %rax
	mov %eax, 8(%rdi)
	movl $0, 12(%rdi)
	ret

/* Vectors 0-31: exception stubs (2: NMI); 32-255: the interrupt handler. */
setup_idt:
	xor %ecx, %ecx
1:	lea irq_handler(%rip), %rax
	cmp $32, %ecx
	jae 2f
	lea exc_stubs(%rip), %rax
	mov %ecx, %edx
	shl $4, %edx
	add %rdx, %rax
2:	call set_gate
	inc %ecx
	cmp $256, %ecx
	jb 1b
	mov $2, %ecx
	lea nmi_handler(%rip), %rax
	call set_gate
	lidt idtr(%rip)
	ret

/*
 * SELTAB[s] = the first window whose cumulative weight is above s; FIXTAB
 * marks the message data bytes; rawmask from the raw shift.
 */
setup_tables:
	xor %ecx, %ecx                  /* s */
	xor %edx, %edx                  /* window */
	lea windows(%rip), %rsi
1:	movzwl 2(%rsi), %eax
	cmp %eax, %ecx
	jb 2f
	inc %edx
	add $24, %rsi
	jmp 1b
2:	mov %dl, SELTAB(%rcx)
	inc %ecx
	cmp $256, %ecx
	jb 1b
	mov $FIXTAB, %edi
	xor %eax, %eax
	mov $4096 / 8, %ecx
	rep stosq
	lea data_positions(%rip), %rsi
3:	movzwl (%rsi), %eax
	test %eax, %eax
	jz 4f
	movb $1, FIXTAB(%rax)
	movb $2, FIXTAB + 1(%rax)
	add $2, %rsi
	jmp 3b
4:	mov raw_shift(%rip), %rcx
	xor %eax, %eax
	test %rcx, %rcx
	jz 5f
	cmp $16, %rcx
	jbe 6f
	mov $16, %ecx
6:	mov $1, %eax
	shl %cl, %rax
	dec %rax
	shl $15, %rax
5:	mov %rax, rawmask(%rip)
	ret

/* The message data registers (offsets in a 4 KiB page or config space). */
data_positions:
	.word 0x008, 0x018, 0x028, 0x038          /* MSI-X table entry n: data at 16n + 8 */
	.word 0x04c                               /* the test device's MSI data (64-bit MSI at 0x40) */
	.word 0x110, 0x130, 0x150, 0x170          /* HPET Tn_FSB_INT_VAL, n = 0..7 */
	.word 0x190, 0x1b0, 0x1d0, 0x1f0
	.word 0

/* The test device's BARs and command register, from ECAM. */
read_testdev:
	mov $TESTDEV_CFG, %edi
	mov 0x10(%rdi), %eax
	mov %eax, bar0_raw(%rip)
	and $0xfffffff0, %eax
	mov %rax, bars(%rip)
	mov 0x14(%rdi), %eax
	mov %eax, bar1_raw(%rip)
	and $0xfffffff0, %eax
	mov %rax, bars + 8(%rip)
	movzwl 0x04(%rdi), %eax
	mov %eax, cmd_raw(%rip)
	ret

/*
 * The 8259 pair: ICW1-ICW4 (Intel 8259A datasheet), vectors 0x20 and
 * 0x28, cascade on IRQ 2; all lines unmasked with interrupts enabled,
 * all masked otherwise.
 */
setup_pic:
	mov $0x11, %al
	out %al, $0x20
	out %al, $0xa0
	mov $0x20, %al
	out %al, $0x21
	mov $0x28, %al
	out %al, $0xa1
	mov $4, %al
	out %al, $0x21
	mov $2, %al
	out %al, $0xa1
	mov $1, %al
	out %al, $0x21
	out %al, $0xa1
	mov $0xff, %al
	testb $FLAG_IRQ, flags(%rip)
	jz 1f
	xor %eax, %eax
1:	out %al, $0x21
	out %al, $0xa1
	ret

/*
 * Starts the AP (Intel SDM Vol. 3A 8.4.4.1, "Typical BSP Initialization
 * Sequence": INIT, a 10 ms wait, SIPI, 200 us, SIPI) with the ICR's
 * all-excluding-self shorthand, the AP entering the trampoline at
 * AP_TRAMP (SIPI vector 0x08), and waits until it runs.
 */
start_ap:
	lea ap_tramp(%rip), %rsi
	mov $AP_TRAMP, %edi
	mov $ap_tramp_end - ap_tramp, %ecx
	rep movsb
	mov $LAPIC, %edi
	movl $0, 0x310(%rdi)
	movl $0xc4500, 0x300(%rdi)      /* INIT, level assert, all excluding self */
	mov $2000, %ecx
1:	pause
	loop 1b
	movl $0xc4608, 0x300(%rdi)      /* Start-up, vector 0x08 */
	mov $200, %ecx
2:	pause
	loop 2b
	movl $0xc4608, 0x300(%rdi)
	mov $3000000, %ecx
3:	cmpq $0, ap_alive(%rip)
	jne 4f
	pause
	loop 3b
	call uart_init
	lea s_aptimeout(%rip), %rsi
	call puts
	mov $0x13, %al
	out %al, $0xf4
	cli
	hlt
4:	ret

/* The AP's trampoline, copied to AP_TRAMP: real mode straight to long mode. */
	.code16
ap_tramp:
	cli
	xor %ax, %ax
	mov %ax, %ds
	lgdtl AP_TRAMP + (ap_tramp_gdtr - ap_tramp)
	mov $0x20, %eax                 /* CR4.PAE */
	mov %eax, %cr4
	mov $PML4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx           /* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov $CR0_LM, %eax
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
	xor %eax, %eax
	mov %eax, %fs
	mov %eax, %gs
	mov $AP_STACK, %esp
	lidt idtr(%rip)
	mov $LAPIC, %edi
	movl $0x1ff, 0xf0(%rdi)         /* SVR: enabled */
	movl $0x10000, 0x350(%rdi)      /* LINT0 masked: the 8259s go to the BSP */
	movl $0, 0x80(%rdi)
	movq $1, ap_alive(%rip)
	mov $1, %ebp
	call fuzz_loop
	cli
	movq $1, ap_done(%rip)
1:	hlt
	jmp 1b

/* ------------------------------------------------------------------ */
/* The operation loop. ebp = the vCPU (0 BSP, 1 AP). */

/* rax = next(r15). Clobbers rdx. */
.macro NEXT
	add %r8, %r15
	mov %r15, %rax
	mov %rax, %rdx
	shr $30, %rdx
	xor %rdx, %rax
	imul %r9, %rax
	mov %rax, %rdx
	shr $27, %rdx
	xor %rdx, %rax
	imul %r10, %rax
	mov %rax, %rdx
	shr $31, %rdx
	xor %rdx, %rax
.endm

/* r14 = (r14 ^ reg) * FNV_PRIME. */
.macro HASH reg
	xor \reg, %r14
	imul fnv_prime(%rip), %r14
.endm

fuzz_loop:
	mov $GAMMA, %r8
	mov $MIX1, %r9
	mov $MIX2, %r10
	mov $CPU_STRIDE, %rax
	imul %rbp, %rax
	add seed(%rip), %rax
	mov %rax, %r15
	mov $FNV_BASIS, %r14
	mov nops(%rip), %r13
	mov stop(%rip), %rax
	test %rax, %rax
	jz 1f
	cmp %r13, %rax
	jae 1f
	mov %rax, %r13
1:	xor %r12d, %r12d
.Lnext_op:
	cmp %r13, %r12
	jae .Lloop_done
	testb $FLAG_IRQ, flags(%rip)
	jz 2f
	sti
2:	call fuzz_op
	inc %r12
	jmp .Lnext_op
.Lloop_done:
	mov %r12, ops_done(,%rbp,8)
	mov %r14, hashes(,%rbp,8)
	ret

/*
 * One operation. In: r8-r10 PRNG constants, r15 state, r14 hash.
 * Working registers: rbx r1, rsi the window entry, r11 the window index,
 * ecx the width, rdi the value, eax/rax the offset.
 */
fuzz_op:
	NEXT
	mov %rax, %rbx
	movzbl %bl, %eax
	movzbl SELTAB(%rax), %r11d
	lea (%r11,%r11,2), %rsi
	lea windows(,%rsi,8), %rsi
	mov %ebx, %ecx                  /* width = widths[(r1 >> 8) & 3] */
	shr $8, %ecx
	and $3, %ecx
	movzbl 4(%rsi,%rcx), %ecx
	NEXT                            /* r2 */
	mov %ebx, %edx                  /* value class */
	shr $11, %edx
	and $7, %edx
	jmp *vclass(,%rdx,8)
.Lv0:	xor %edi, %edi
	jmp .Lvdone
.Lv1:	mov $-1, %rdi
	jmp .Lvdone
.Lv2:	mov %eax, %edi
	and $0xf, %edi
	jmp .Lvdone
.Lv3:	push %rcx
	mov %eax, %ecx
	mov $1, %edi
	shl %cl, %rdi
	pop %rcx
	jmp .Lvdone
.Lv4:	movzbl %al, %edi
	jmp .Lvdone
.Lv5:	mov %rax, %rdi
.Lvdone:
	and masks(,%rcx,8), %rdi
	mov %rbx, %rax                  /* offset = (r1 >> 32) & mask */
	shr $32, %rax
	and 12(%rsi), %eax
	bt $14, %ebx
	jnc 3f
	mov %ecx, %edx
	neg %edx
	and %edx, %eax
3:	movzbl (%rsi), %edx
	jmp *kinds(,%rdx,8)

	.balign 8
vclass:
	.quad .Lv0, .Lv1, .Lv2, .Lv3, .Lv4, .Lv5, .Lv5, .Lv5
kinds:
	.quad op_port, op_mmio, op_bar, op_ecam, op_cfg1, op_restore
masks:
	.quad 0, 0xff, 0xffff, 0, 0xffffffff, 0, 0, 0, -1
mults:
	.quad 0, 0x0101010101010101, 0x0001000100010001, 0, 0x0000000100000001, 0, 0, 0, 1

/* Folds the operation in (eax = its offset, ecx width, rdi value) and returns. */
op_hash:
	shl $16, %rax
	or %r11, %rax
	mov %ecx, %edx
	shl $8, %edx
	or %rdx, %rax
	mov %ebx, %edx                  /* write << 12 */
	and $0x400, %edx
	shl $2, %edx
	or %rdx, %rax
	call is_raw                     /* raw << 13 */
	shl $13, %edx
	or %rdx, %rax
	HASH %rax
	bt $10, %ebx
	jnc 1f
	HASH %rdi
1:	ret

/* edx = 1 when this operation is raw (skips the VM-ending fix-ups). */
is_raw:
	xor %edx, %edx
	push %rax
	mov rawmask(%rip), %rax
	test %rax, %rax
	jz 1f
	test %rbx, %rax
	jnz 1f
	inc %edx
1:	pop %rax
	ret

/* Fixes message data bytes: rdi value, eax position (& 0xfff), ecx width. */
fix_msi:
	push %rax
	push %rcx
	push %rdx
	push %r11
	and $0xfff, %eax
	cmp $0x1f1, %eax
	ja 3f
	xor %r11d, %r11d                /* byte index */
1:	movzbl FIXTAB(%rax,%r11), %edx
	test %edx, %edx
	jz 2f
	push %rcx
	lea (,%r11,8), %ecx
	cmp $1, %edx
	jne 4f
	mov $0x20, %edx                 /* vector >= 32 */
	shl %cl, %rdx
	or %rdx, %rdi
	pop %rcx
	jmp 2f
4:	mov $0x07, %edx                 /* delivery mode: fixed */
	shl %cl, %rdx
	not %rdx
	and %rdx, %rdi
	pop %rcx
2:	inc %r11d
	cmp %ecx, %r11d
	jb 1b
3:	pop %r11
	pop %rdx
	pop %rcx
	pop %rax
	ret

/* MMIO access at rdx: width ecx, write bit in rbx, value rdi. */
mmio_access:
	bt $10, %ebx
	jc 5f
	cmp $1, %ecx
	jne 1f
	movb (%rdx), %al
	ret
1:	cmp $2, %ecx
	jne 2f
	movw (%rdx), %ax
	ret
2:	cmp $4, %ecx
	jne 3f
	movl (%rdx), %eax
	ret
3:	movq (%rdx), %rax
	ret
5:	cmp $1, %ecx
	jne 6f
	mov %dil, (%rdx)
	ret
6:	cmp $2, %ecx
	jne 7f
	mov %di, (%rdx)
	ret
7:	cmp $4, %ecx
	jne 8f
	mov %edi, (%rdx)
	ret
8:	mov %rdi, (%rdx)
	ret

/* Port access at dx: width ecx, write bit in rbx, value rdi. */
port_access:
	bt $10, %ebx
	jc 5f
	cmp $1, %ecx
	jne 1f
	in %dx, %al
	ret
1:	cmp $2, %ecx
	jne 2f
	in %dx, %ax
	ret
2:	in %dx, %eax
	ret
5:	mov %rdi, %rax
	cmp $1, %ecx
	jne 6f
	out %al, %dx
	ret
6:	cmp $2, %ecx
	jne 7f
	out %ax, %dx
	ret
7:	out %eax, %dx
	ret

cfg_lock_take:
	push %rax
1:	mov $1, %eax
	xchg %eax, cfg_lock(%rip)
	test %eax, %eax
	jz 2f
	pause
	jmp 1b
2:	pop %rax
	ret

cfg_lock_drop:
	movl $0, cfg_lock(%rip)
	ret

op_port:
	push %rax                       /* the offset */
	mov 8(%rsi), %edx
	add %eax, %edx                  /* the port */
	testb $F_STRING, 1(%rsi)
	jz 1f
	bt $63, %rbx
	jc op_string
1:	testb $F_LOCK, 1(%rsi)
	jz 1f
	call cfg_lock_take
1:	bt $10, %ebx
	jnc 2f
	call fix_port
2:	call port_access
	testb $F_LOCK, 1(%rsi)
	jz 3f
	call cfg_lock_drop
3:	pop %rax
	jmp op_hash

/*
 * String I/O (rep outs/ins) of count = r1[59:56] + 1 elements of the
 * width, through the vCPU's buffer; the elements written all equal the
 * value. The count folds into the hash first (count | 1 << 32). Only for
 * windows without fix-ups. Stack: the offset.
 */
op_string:
	mov %rbx, %rax
	shr $56, %rax
	and $15, %eax
	inc %eax                        /* count */
	push %rcx                       /* width */
	push %rax                       /* count */
	bts $32, %rax
	HASH %rax
	mov %ebp, %esi
	shl $8, %esi
	add $STRBUF, %esi               /* this vCPU's buffer */
	bt $10, %ebx
	jnc 5f
	push %rdi
	mov %rdi, %rax
	mov 16(%rsp), %rcx
	imul mults(,%rcx,8), %rax       /* the element, repeated */
	mov %esi, %edi
	mov $8, %ecx
	rep stosq
	pop %rdi
	mov 8(%rsp), %rax               /* width */
	mov (%rsp), %rcx                /* count */
	cmp $1, %eax
	jne 1f
	rep outsb
	jmp 9f
1:	cmp $2, %eax
	jne 2f
	rep outsw
	jmp 9f
2:	rep outsl
	jmp 9f
5:	push %rdi
	mov %esi, %edi
	mov 16(%rsp), %rax              /* width */
	mov 8(%rsp), %rcx               /* count */
	cmp $1, %eax
	jne 6f
	rep insb
	jmp 8f
6:	cmp $2, %eax
	jne 7f
	rep insw
	jmp 8f
7:	rep insl
8:	pop %rdi
9:	pop %rax                        /* count */
	pop %rcx                        /* width */
	pop %rax                        /* the offset */
	jmp op_hash

/* Port write fix-ups: dx the port, rdi the value, ecx the width. */
fix_port:
	cmp $0xcfc, %dx
	jb 1f
	cmp $0xcff, %dx
	ja 1f
	lea 0x4c - 0xcfc(%rdx), %eax    /* the register is unknown: as if at 0x4c */
	jmp fix_msi
1:	push %rdx
	call is_raw
	mov %edx, %eax
	pop %rdx
	test %eax, %eax
	jnz 9f
	cmp $0xcf9, %dx
	jne 2f
	and $~4, %rdi                   /* RST_CNT.RST_CPU */
	ret
2:	cmp $0x64, %dx
	jne 3f
	mov %edi, %eax                  /* F0-FE with bit 0 clear pulse the reset line */
	and $0xf1, %al
	cmp $0xf0, %al
	jne 9f
	or $1, %rdi
	ret
3:	cmp $0x60, %dx
	jne 4f
	or $1, %rdi                     /* output port bit 0: reset line inactive */
	ret
4:	cmp $0x404, %dx
	jne 5f
	and $~0x2000, %rdi              /* PM1a_CNT.SLP_EN */
	ret
5:	cmp $0x405, %dx
	jne 9f
	and $~0x20, %rdi
9:	ret

op_mmio:
	mov 8(%rsi), %edx
	add %rax, %rdx
	jmp mmio_common

op_bar:
	movzbl 1(%rsi), %edx
	mov bars(,%rdx,8), %rdx
	add 8(%rsi), %edx
	add %rax, %rdx
mmio_common:
	push %rax
	bt $10, %ebx
	jnc 1f
	mov %edx, %eax
	call fix_msi
1:	call mmio_access
	pop %rax
	jmp op_hash

/*
 * r3 -> a configuration address, biased to bus 0, the populated slots
 * (0, 3, 31) and function 0: eax = bus << 20 | dev << 15 | fn << 12 | reg
 * (reg aligned down to the width when r1 bit 14 is set).
 */
cfg_addr:
	push %rcx
	NEXT
	mov %rax, %rdx                  /* r3, kept for op_cfg1 */
	push %rdx
	mov %eax, %r11d                 /* (index saved by the caller) */
	and $0xfff, %r11d               /* reg */
	mov %eax, %ecx
	shr $12, %ecx
	and $3, %ecx
	cmp $3, %ecx
	je 1f
	and $0xff, %r11d
1:	mov (%rsp), %rcx                /* fn */
	shr $17, %ecx
	and $3, %ecx
	xor %edi, %edi
	cmp $3, %ecx
	jne 2f
	mov (%rsp), %rdi
	shr $14, %edi
	and $7, %edi
2:	shl $12, %edi
	or %edi, %r11d
	mov (%rsp), %rcx                /* dev */
	shr $19, %ecx
	and $3, %ecx
	cmp $3, %ecx
	je 3f
	mov (%rsp), %rcx
	shr $21, %ecx
	and $3, %ecx
	movzbl devtab(%rcx), %ecx
	jmp 4f
3:	mov (%rsp), %rcx
	shr $23, %ecx
	and $31, %ecx
4:	shl $15, %ecx
	or %ecx, %r11d
	mov (%rsp), %rcx                /* bus */
	shr $28, %rcx
	and $7, %ecx
	xor %edi, %edi
	cmp $7, %ecx
	jne 5f
	mov (%rsp), %rdi
	shr $31, %rdi
	and $0xff, %edi
5:	shl $20, %edi
	or %edi, %r11d
	pop %rdx
	pop %rcx
	mov %r11d, %eax
	bt $14, %ebx
	jnc 6f
	mov %ecx, %edi
	neg %edi
	and %edi, %eax
6:	ret
devtab:	.byte 0, 3, 31, 3

op_ecam:
	push %r11
	push %rdi
	call cfg_addr
	pop %rdi
	pop %r11
	mov $ECAM, %edx
	add %rax, %rdx
	jmp mmio_common

/*
 * Mechanism #1 (PCI Local Bus 3.0, 3.2.2.3.2): a CONFIG_ADDRESS write to
 * 0xCF8 (enable bit, bus, device, function, dword register; now and then
 * 32 random bits) and a CONFIG_DATA access at 0xCFC + eax (the offset).
 */
op_cfg1:
	push %rax
	push %r11
	push %rdi
	call cfg_addr                   /* eax: bus/dev/fn/reg, rdx: r3 */
	pop %rdi
	pop %r11
	mov %eax, %ecx                  /* -> bus << 16 | dev << 11 | fn << 8 | reg & 0xfc */
	and $0xfc, %ecx
	shr $4, %eax
	and $0xffff00, %eax
	or %ecx, %eax
	or $0x80000000, %eax
	mov %rdx, %rcx
	shr $60, %rcx
	cmp $7, %ecx
	jne 1f
	mov %rdx, %rax
	shr $24, %rax
	mov %eax, %eax
1:	mov %eax, %edx
	HASH %rdx
	push %rax                       /* 8(%rsp): the data port offset */
	mov %ebx, %ecx                  /* width again */
	shr $8, %ecx
	and $3, %ecx
	movzbl 4(%rsi,%rcx), %ecx
	call cfg_lock_take
	mov $0xcf8, %edx
	out %eax, %dx
	bt $10, %ebx
	jnc 2f
	and $0xfc, %eax                 /* the register the data access reaches */
	add 8(%rsp), %eax
	call fix_msi
2:	mov 8(%rsp), %rdx
	add $0xcfc, %edx
	call port_access
	call cfg_lock_drop
	pop %rax
	pop %rax
	jmp op_hash

/* Writes the test device's BARs and command register back (ECAM). */
op_restore:
	push %rax
	mov $TESTDEV_CFG, %edx
	mov bar0_raw(%rip), %eax
	mov %eax, 0x10(%rdx)
	mov bar1_raw(%rip), %eax
	mov %eax, 0x14(%rdx)
	mov cmd_raw(%rip), %eax
	mov %eax, 0x04(%rdx)
	pop %rax
	jmp op_hash

/*
 * The windows (kind, flags, weight out of 256, widths, base, offset mask,
 * name): the harness reads this table out of the binary. ecamx, hpetend
 * and bar0end straddle the end of a window (00:03.0's configuration page
 * into 00:03.1's, the HPET's 1 KiB into nothing, BAR0 into BAR1): KVM
 * splits an access across a page boundary in two.
 */
.set cum, 0
.macro WIN name, kind, flags, weight, w0, w1, w2, w3, base, mask
	.byte \kind, \flags
	.set cum, cum + \weight
	.word cum
	.byte \w0, \w1, \w2, \w3
	.long \base
	.long \mask
.Lwn\@:	.ascii "\name"
	.fill 8 - (. - .Lwn\@), 1, 0
.endm
	.balign 8
windows:
	WIN "com1",    K_PORT, F_STRING, 16, 1, 2, 4, 1, 0x3f8, 7
	WIN "com2",    K_PORT, F_STRING, 10, 1, 2, 4, 1, 0x2f8, 7
	WIN "rtc",     K_PORT, F_STRING, 20, 1, 2, 4, 1, 0x70, 3
	WIN "i8042d",  K_PORT, 0,       6, 1, 2, 4, 1, 0x60, 0
	WIN "i8042c",  K_PORT, 0,       8, 1, 2, 4, 1, 0x64, 0
	WIN "pm",      K_PORT, 0,      19, 1, 2, 4, 1, 0x400, 15
	WIN "post",    K_PORT, F_STRING, 2, 1, 2, 4, 1, 0x80, 0
	WIN "pciport", K_PORT, F_LOCK, 10, 1, 2, 4, 1, 0xcf8, 7
	WIN "cfg1",    K_CFG1, 0,      24, 1, 2, 4, 1, 0, 3
	WIN "ecam",    K_ECAM, 0,      37, 1, 2, 4, 8, 0, 0
	WIN "ecamx",   K_MMIO, 0,       2, 1, 2, 4, 8, TESTDEV_CFG + 0xff8, 0xf
	WIN "hpet",    K_MMIO, 0,      33, 1, 2, 4, 8, 0xfed00000, 0x3ff
	WIN "hpetend", K_MMIO, 0,       2, 1, 2, 4, 8, 0xfed003f8, 0xf
	WIN "bar0reg", K_BAR,  0,      20, 1, 2, 4, 8, 0, 0x1f
	WIN "bar0",    K_BAR,  0,       6, 1, 2, 4, 8, 0, 0xfff
	WIN "msix",    K_BAR,  1,      24, 1, 2, 4, 8, 0, 0x3f
	WIN "pba",     K_BAR,  1,       4, 1, 2, 4, 8, 0x800, 7
	WIN "bar1",    K_BAR,  1,       6, 1, 2, 4, 8, 0, 0xfff
	WIN "bar0end", K_BAR,  0,       2, 1, 2, 4, 8, 0xff8, 0xf
	WIN "iohole",  K_PORT, F_STRING, 2, 1, 2, 4, 1, 0x2000, 0xff
	WIN "mmiohole",K_MMIO, 0,       2, 1, 2, 4, 8, 0xc0100000, 0xfffff
	WIN "restore", K_RESTORE, 0,    1, 1, 2, 4, 8, 0, 0
windows_end:
.if cum != 256
	.error "window weights must add up to 256"
.endif

/* ------------------------------------------------------------------ */
/* Interrupts and exceptions. */

/*
 * Every vector from 32: EOI both 8259s (on the BSP, the only vCPU whose
 * LINT0 takes them) and the LAPIC, return with IF clear. ebp is the vCPU
 * number throughout the loop, the only code that runs with IF set.
 */
irq_handler:
	push %rax
	lock incq irq_count(%rip)
	test %ebp, %ebp                 /* the 8259s only interrupt the BSP */
	jnz 1f
	mov $0x20, %al                  /* non-specific EOI (8259A OCW2) */
	out %al, $0xa0
	out %al, $0x20
1:	mov $LAPIC + 0xb0, %eax         /* LAPIC EOI */
	movl $0, (%rax)
	andq $~0x200, 24(%rsp)          /* RFLAGS.IF of the interrupted code */
	pop %rax
	iretq

nmi_handler:
	lock incq nmi_count(%rip)
	iretq

	.balign 16
exc_stubs:
	.set vec, 0
	.rept 32
	.balign 16
	pushq $vec
	jmp exception
	.set vec, vec + 1
	.endr

/* "fuzz exception V frame W1 W2 cpu C" (the two words above the vector), exit 0x11. */
exception:
	call uart_init
	lea s_exc(%rip), %rsi
	call puts
	mov (%rsp), %rax
	call puthex
	lea s_rip(%rip), %rsi
	call puts
	mov 8(%rsp), %rax
	call puthex
	lea s_err(%rip), %rsi
	call puts
	mov 16(%rsp), %rax
	call puthex
	lea s_cpu(%rip), %rsi
	call puts
	mov %rbp, %rax
	call puthex
	call newline
	mov $0x11, %al
	out %al, $0xf4
1:	cli
	hlt
	jmp 1b

/* ------------------------------------------------------------------ */
/* COM1 output. */

/* 8N1, no interrupts, FIFOs on and cleared, loopback off. Clobbers rax, rdx. */
uart_init:
	mov $0x3fb, %dx
	mov $0x03, %al
	out %al, %dx
	mov $0x3f9, %dx
	xor %eax, %eax
	out %al, %dx
	mov $0x3fa, %dx
	mov $0x07, %al
	out %al, %dx
	mov $0x3fc, %dx
	mov $0x03, %al
	out %al, %dx
	ret

banner:
	lea s_boot(%rip), %rsi
	call puts
	mov seed(%rip), %rax
	call puthex
	lea s_ops(%rip), %rsi
	call puts
	mov nops(%rip), %rax
	call putdec
	lea s_flags(%rip), %rsi
	call puts
	mov flags(%rip), %rax
	call puthex
	lea s_bar0(%rip), %rsi
	call puts
	mov bars(%rip), %rax
	call puthex
	lea s_bar1(%rip), %rsi
	call puts
	mov bars + 8(%rip), %rax
	call puthex
	lea s_prng(%rip), %rsi
	call puts
	/* xor of the first 16 outputs of vCPU 0's stream */
	push %r15
	mov $GAMMA, %r8
	mov $MIX1, %r9
	mov $MIX2, %r10
	mov seed(%rip), %r15
	xor %ecx, %ecx
	xor %ebx, %ebx
1:	NEXT
	xor %rax, %rbx
	inc %ecx
	cmp $16, %ecx
	jb 1b
	pop %r15
	mov %rbx, %rax
	call puthex
	jmp newline

report:
	lea s_done(%rip), %rsi
	call puts
	mov ops_done(%rip), %rax
	add ops_done + 8(%rip), %rax
	call putdec
	lea s_o0(%rip), %rsi
	call puts
	mov ops_done(%rip), %rax
	call putdec
	lea s_h0(%rip), %rsi
	call puts
	mov hashes(%rip), %rax
	call puthex
	testb $FLAG_SMP, flags(%rip)
	jz 1f
	lea s_o1(%rip), %rsi
	call puts
	mov ops_done + 8(%rip), %rax
	call putdec
	lea s_h1(%rip), %rsi
	call puts
	mov hashes + 8(%rip), %rax
	call puthex
1:	lea s_irqs(%rip), %rsi
	call puts
	mov irq_count(%rip), %rax
	call putdec
	lea s_nmis(%rip), %rsi
	call puts
	mov nmi_count(%rip), %rax
	call putdec
	jmp newline

/* putc: al. Clobbers rdx. */
putc:
	push %rax
	mov $0x3fd, %dx
1:	in %dx, %al
	test $0x20, %al
	jz 1b
	pop %rax
	mov $0x3f8, %dx
	out %al, %dx
	ret

newline:
	mov $'\n', %al
	jmp putc

/* puts: the string at rsi. Clobbers rax, rdx, rsi. */
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
1:	mov %rbx, %rax
	shr %cl, %rax
	test $0xf, %al
	jnz 2f
	test %ecx, %ecx
	jz 2f
	sub $4, %ecx
	jmp 1b
2:	mov %rbx, %rax
	shr %cl, %rax
	and $0xf, %al
	add $'0', %al
	cmp $'9', %al
	jbe 3f
	add $'a' - '9' - 1, %al
3:	push %rcx
	call putc
	pop %rcx
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
	push %rcx
	call putc
	pop %rcx
	inc %rcx
	cmp %rbx, %rcx
	jb 2b
	mov %rbx, %rsp
	pop %rbx
	ret

s_boot:	.asciz "fuzz boot seed="
s_ops:	.asciz " ops="
s_flags: .asciz " flags="
s_bar0:	.asciz " bar0="
s_bar1:	.asciz " bar1="
s_prng:	.asciz " prng="
s_done:	.asciz "fuzz done ops="
s_o0:	.asciz " o0="
s_h0:	.asciz " h0="
s_o1:	.asciz " o1="
s_h1:	.asciz " h1="
s_irqs:	.asciz " irqs="
s_nmis:	.asciz " nmis="
s_exc:	.asciz "fuzz exception "
s_rip:	.asciz " frame "
s_err:	.asciz " "
s_cpu:	.asciz " cpu "
s_aptimeout: .asciz "fuzz ap timeout\n"

	.balign 16
gdt:
	.quad 0
	.quad 0x00af9a000000ffff        /* 0x08 code, 64-bit */
	.quad 0x00cf92000000ffff        /* 0x10 data */
gdt_end:
	.balign 8
	.word 0, 0, 0
gdtr:
	.word gdt_end - gdt - 1
	.quad gdt
	.word 0, 0, 0
idtr:
	.word 256 * 16 - 1
	.quad IDT

	.balign 8
fnv_prime: .quad FNV_PRIME
rawmask: .quad 0
bars:	.quad 0, 0
bar0_raw: .long 0
bar1_raw: .long 0
cmd_raw: .long 0
	.balign 8
cfg_lock: .long 0
	.balign 8
ops_done: .quad 0, 0
hashes:	.quad 0, 0
irq_count: .quad 0
nmi_count: .quad 0
ap_alive: .quad 0
ap_done: .quad 0

	.section .note.GNU-stack, "", @progbits
