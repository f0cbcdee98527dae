/*
 * ctl.S: the guest the `dhyve ctl` tests steer (tests/ctl_test.ts). 64-bit,
 * entered by the raw payload's long64 mode at 0x10000; 16 MiB of RAM.
 *
 * At boot it builds its own GDT (ring-3 segments, a TSS), IDT and page
 * tables, then prints on COM1:
 *   boot N            N counts boots in CMOS byte 0x49 (kept across a reset)
 *   apicid 0x..       its APIC ID (CPUID.01H:EBX[31:24])
 *   cr3 0x..          its page tables
 *   probe GLA ok|bad  a tag written through GLA is (not) seen at the GPA
 *                     the tables map it to (the CPU's own page walk)
 *   probe GLA pf 0x.. a read of an unmapped GLA faulted with this error code
 *   ready
 * Its test mappings (4-level paging, all under PML4[1]):
 *   0x8000000000 -> 0x400000  4 KiB, user, read/write (written at boot)
 *   0x8000001000 -> 0x401000  4 KiB, supervisor, read-only (read at boot)
 *   0x8000002000              not present
 *   0x8000003000 -> 0x403000  4 KiB, user, read/write, never accessed
 *   0x8000200000 -> 0x600000  2 MiB, supervisor, read/write (read at boot)
 * Then it polls, about every few milliseconds:
 *   - CMOS byte 0x48 (the command byte): on a change it prints "cmd 0x..",
 *     the value it read, and runs command 1 (print "ptes" followed by the
 *     eight paging entries of the test mappings: PML4[1], PDPT[0], PD[0],
 *     PD[1], PT[0..3]), 2 (run a write to 0x201000 at CPL 3, then print
 *     "user done"), 3 (print "rtc" and the BCD bytes century, year, month,
 *     day, hours, minutes, seconds), 4 (arm DR0/DR7 for that write itself,
 *     then run it as 2 does), 5 (print "dr dr0 0x.. dr7 0x.." as read);
 *   - r14: when it differs from the last value seen it prints "r14 0x..";
 *   - NMIs taken: "nmi N" when the count moves;
 *   - #DB: "db dr6 0x.. rip 0x.." for each debug exception taken;
 *   - GPE0_STS bit 0 (the ACPI power button, port 0x40c, enabled in
 *     GPE0_EN): "pwrbtn", then it ends through the debug-exit port with
 *     0x21 (exit status 0x43).
 * r15 holds 0xfeedf00dcafe0001 throughout. Any other exception prints
 * "exception V rip R W" and ends with debug-exit 0x7f.
 */
#define KCS 0x08
#define KDS 0x10
#define UDS 0x1b
#define UCS 0x23
#define TSS_SEL 0x28
#define KSTACK 0x90000
#define RSP0 0x88000
#define IDT 0x80000
#define PML4 0x100000
#define PDPT0 0x101000
#define PD0 0x102000
#define PDPT1 0x103000
#define PD1 0x104000
#define PT1 0x105000
#define USER_PAGE 0x200000
#define WATCH 0x201000
#define USTACK 0x210000
#define CMOS_CMD 0x48
#define CMOS_BOOTS 0x49
#define P 1
#define RW 2
#define US 4
#define PS 0x80

	.code64
	.text
	.globl _start
_start:
	cli
	cld
	mov $KSTACK, %esp
	mov $0xff, %al                  /* mask both 8259s */
	out %al, $0x21
	out %al, $0xa1
	call setup_gdt
	call setup_idt
	call setup_paging
	/* Boot counter in CMOS (RAM is cleared by a reset, the CMOS is not). */
	mov $CMOS_BOOTS, %al
	call cmos_read
	inc %al
	mov %al, %bl
	mov $CMOS_BOOTS, %al
	call cmos_write
	lea s_boot(%rip), %rsi
	call puts
	movzbl %bl, %eax
	call puthex
	call newline
	mov $1, %eax
	cpuid
	shr $24, %ebx
	lea s_apic(%rip), %rsi
	call puts
	mov %ebx, %eax
	call puthex
	call newline
	lea s_cr3(%rip), %rsi
	call puts
	mov %cr3, %rax
	call puthex
	call newline
	call probes
	/* Enable the power button's GPE (ACPI 6.5, 4.8.4.1: GPE0_EN). */
	mov $0x40e, %dx
	mov $1, %al
	out %al, %dx
	mov $CMOS_CMD, %al
	call cmos_read
	mov %al, last_cmd(%rip)
	lea s_ready(%rip), %rsi
	call puts
	mov $0xfeedf00dcafe0001, %r15
	mov %r14, last_r14(%rip)

main_loop:
	mov $CMOS_CMD, %al
	call cmos_read
	cmp last_cmd(%rip), %al
	je 1f
	mov %al, last_cmd(%rip)
	call command
1:	cmp last_r14(%rip), %r14
	je 2f
	mov %r14, last_r14(%rip)
	lea s_r14(%rip), %rsi
	call puts
	mov %r14, %rax
	call puthex
	call newline
2:	mov nmi_count(%rip), %rax
	cmp nmi_seen(%rip), %rax
	je 3f
	mov %rax, nmi_seen(%rip)
	lea s_nmi(%rip), %rsi
	call puts
	mov nmi_seen(%rip), %rax
	call puthex
	call newline
3:	call report_db
	mov $0x40c, %dx                 /* GPE0_STS */
	in %dx, %al
	test $1, %al
	jz 4f
	lea s_pwrbtn(%rip), %rsi
	call puts
	mov $0x21, %al
	out %al, $0xf4
4:	mov $3000, %ecx
5:	pause
	loop 5b
	jmp main_loop

/* Runs the command in al. */
command:
	push %rax
	lea s_cmd(%rip), %rsi
	call puts
	movzbl (%rsp), %eax
	call puthex
	call newline
	pop %rax
	cmp $1, %al
	je print_ptes
	cmp $2, %al
	je run_user
	cmp $3, %al
	je print_rtc
	cmp $4, %al
	je self_watch
	cmp $5, %al
	je print_dr
	ret

/*
 * The guest arms the watchpoint itself (DR0 = WATCH; DR7: L0, R/W0 = 01
 * write, LEN0 = 11 four bytes; SDM Vol. 3A 18.2.4) and runs user_code: a
 * control that tells whether the host delivers data breakpoints at all.
 */
self_watch:
	mov $WATCH, %eax
	mov %rax, %dr0
	mov $0xd0001, %eax
	mov %rax, %dr7
	jmp run_user

/* Prints "dr dr0 0x.. dr7 0x.." as the guest reads them. */
print_dr:
	lea s_dr(%rip), %rsi
	call puts
	mov %dr0, %rax
	call puthex
	lea s_dr7(%rip), %rsi
	call puts
	mov %dr7, %rax
	call puthex
	jmp newline

print_ptes:
	lea s_ptes(%rip), %rsi
	call puts
	mov $PML4 + 8, %eax
	call put_entry
	mov $PDPT1, %eax
	call put_entry
	mov $PD1, %eax
	call put_entry
	mov $PD1 + 8, %eax
	call put_entry
	mov $PT1, %eax
	call put_entry
	mov $PT1 + 8, %eax
	call put_entry
	mov $PT1 + 16, %eax
	call put_entry
	mov $PT1 + 24, %eax
	call put_entry
	jmp newline

/* Prints " " and the 8-byte entry at eax (through the identity map). */
put_entry:
	mov (%rax), %rbx
	mov $' ', %al
	call putc
	mov %rbx, %rax
	jmp puthex

/*
 * Runs user_code at CPL 3, then reports. It comes back through #UD (its
 * ud2): an int n at CPL 3 raised #UD on the nested KVM of the development
 * machines.
 */
run_user:
	lea user_code(%rip), %rsi
	mov $USER_PAGE, %edi
	mov $user_code_end - user_code, %ecx
	rep movsb
	mov %rsp, saved_rsp(%rip)
	pushq $UDS
	pushq $USTACK
	pushq $0x2                      /* RFLAGS: IF = 0 */
	pushq $UCS
	pushq $USER_PAGE
	iretq
user_back:
	mov saved_rsp(%rip), %rsp
	mov $KDS, %eax
	mov %eax, %ss
	call report_db
	lea s_user(%rip), %rsi
	jmp puts

/* Copied to USER_PAGE and run at CPL 3: one 4-byte write to WATCH. */
user_code:
	movl $0x5a5a5a5a, WATCH
	nop
	ud2
user_code_end:

/* Prints "db dr6 .. rip .." for a #DB taken since the last report. */
report_db:
	mov db_count(%rip), %rax
	cmp db_seen(%rip), %rax
	je 1f
	mov %rax, db_seen(%rip)
	lea s_db(%rip), %rsi
	call puts
	mov db_dr6(%rip), %rax
	call puthex
	lea s_rip(%rip), %rsi
	call puts
	mov db_rip(%rip), %rax
	call puthex
	call newline
1:	ret

print_rtc:
	/* Wait for no update in progress (register A bit 7). */
1:	mov $0x0a, %al
	call cmos_read
	test $0x80, %al
	jnz 1b
	lea s_rtc(%rip), %rsi
	call puts
	lea rtc_regs(%rip), %rbx
2:	movzbl (%rbx), %eax
	cmp $0xff, %al
	je 3f
	call cmos_read
	push %rax
	mov $' ', %al
	call putc
	pop %rax
	call put2
	inc %rbx
	jmp 2b
3:	jmp newline

rtc_regs:
	.byte 0x32, 0x09, 0x08, 0x07, 0x04, 0x02, 0x00, 0xff

/* Accesses through the test mappings, checked through the identity map. */
probes:
	/* 0x8000000000 -> 0x400000: write a tag through the GLA, look at the GPA. */
	mov $0x8000000000, %rdi
	movq $0x1111aaaa, (%rdi)
	mov $0x400000, %esi
	cmpq $0x1111aaaa, (%rsi)
	call probe_result
	/* 0x8000001000 -> 0x401000 (read-only): write at the GPA, read through the GLA. */
	movq $0x2222bbbb, 0x401000
	mov $0x8000001000, %rdi
	cmpq $0x2222bbbb, (%rdi)
	call probe_result
	/* 0x8000200000 + 0x1234 -> 0x601234 (2 MiB page). */
	movq $0x3333cccc, 0x601234
	mov $0x8000201234, %rdi
	cmpq $0x3333cccc, (%rdi)
	call probe_result
	/* 0x8000002000: not present; the read faults and resumes at 1f. */
	mov $0x8000002000, %rdi
	lea 1f(%rip), %rax
	mov %rax, pf_resume(%rip)
	movq $-1, pf_err(%rip)
	mov (%rdi), %rax
1:	movq $0, pf_resume(%rip)
	lea s_probe(%rip), %rsi
	call puts
	mov %rdi, %rax
	call puthex
	lea s_pf(%rip), %rsi
	call puts
	mov pf_err(%rip), %rax
	call puthex
	jmp newline

/* ZF from the caller's compare; rdi = the GLA. */
probe_result:
	pushfq
	lea s_probe(%rip), %rsi
	call puts
	mov %rdi, %rax
	call puthex
	lea s_ok(%rip), %rsi
	popfq
	je 1f
	lea s_bad(%rip), %rsi
1:	call puts
	ret

setup_paging:
	xor %eax, %eax
	mov $PML4, %edi
	mov $6 * 4096 / 4, %ecx
	rep stosl
	movq $PDPT0 | P | RW | US, PML4
	movq $PDPT1 | P | RW | US, PML4 + 8
	movq $PD0 | P | RW | US, PDPT0
	/* Identity: 0-2 MiB and 4-16 MiB supervisor, 2-4 MiB user (the CPL-3 code). */
	mov $PD0, %edi
	xor %eax, %eax
	mov $8, %ecx
1:	mov %rax, %rdx
	or $P | RW | PS, %rdx
	cmp $USER_PAGE, %eax
	jne 2f
	or $US, %rdx
2:	mov %rdx, (%rdi)
	add $8, %edi
	add $0x200000, %eax
	loop 1b
	movq $PD1 | P | RW | US, PDPT1
	movq $PT1 | P | RW | US, PD1
	movq $0x600000 | P | RW | PS, PD1 + 8
	movq $0x400000 | P | RW | US, PT1
	movq $0x401000 | P, PT1 + 8
	movq $0x403000 | P | RW | US, PT1 + 24
	mov $PML4, %eax
	mov %rax, %cr3
	ret

setup_gdt:
	lea tss(%rip), %rax             /* below 16 MiB: base 23:0 is all of it */
	shl $16, %rax
	mov $0x890000000067, %rdx       /* present, 64-bit available TSS, limit 103 */
	or %rdx, %rax
	mov %rax, gdt + TSS_SEL(%rip)
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
	mov $TSS_SEL, %eax
	ltr %ax
	ret

/* ecx = vector, rax = handler, dx = type/DPL (0x8e00 or 0xee00). */
set_gate:
	mov %ecx, %edi
	shl $4, %edi
	add $IDT, %edi
	mov %ax, (%rdi)
	movw $KCS, 2(%rdi)
	mov %dx, 4(%rdi)
	shr $16, %rax
	mov %ax, 6(%rdi)
	shr $16, %rax
	mov %eax, 8(%rdi)
	movl $0, 12(%rdi)
	ret

setup_idt:
	xor %ecx, %ecx
1:	lea exc_stubs(%rip), %rax       /* vectors 0-31: a stub each; the rest: stub 31 */
	mov %ecx, %edx
	cmp $31, %edx
	jbe 2f
	mov $31, %edx
2:	shl $4, %edx
	add %rdx, %rax
	mov $0x8e00, %dx
	call set_gate
	inc %ecx
	cmp $256, %ecx
	jb 1b
	mov $1, %ecx
	lea db_handler(%rip), %rax
	call set_gate
	mov $2, %ecx
	lea nmi_handler(%rip), %rax
	call set_gate
	mov $14, %ecx
	lea pf_handler(%rip), %rax
	call set_gate
	mov $6, %ecx
	lea ud_handler(%rip), %rax
	call set_gate
	lidt idtr(%rip)
	ret

db_handler:
	push %rax
	mov %dr6, %rax
	mov %rax, db_dr6(%rip)
	mov 8(%rsp), %rax
	mov %rax, db_rip(%rip)
	incq db_count(%rip)
	mov $0xffff0ff0, %eax           /* DR6 to its cleared value (SDM Vol. 3A 18.2.3) */
	mov %rax, %dr6
	pop %rax
	iretq

nmi_handler:
	incq nmi_count(%rip)
	iretq

pf_handler:
	cmpq $0, pf_resume(%rip)
	jne 1f
	pushq $14
	jmp unexpected
1:
	push %rax
	mov 8(%rsp), %rax               /* the error code */
	mov %rax, pf_err(%rip)
	mov pf_resume(%rip), %rax
	mov %rax, 16(%rsp)              /* resume there */
	pop %rax
	add $8, %rsp                    /* drop the error code */
	iretq

/* #UD: the ud2 that ends user_code (from CPL 3) goes back to run_user. */
ud_handler:
	testb $3, 8(%rsp)               /* CS of the frame: from CPL 3? */
	jz 1f
	jmp user_back
1:	pushq $6
	jmp unexpected

/* Stub per vector, 16 bytes apart: the vector number, then unexpected. */
	.balign 16
exc_stubs:
	.set vec, 0
	.rept 32
	.balign 16
	pushq $vec
	jmp unexpected
	.set vec, vec + 1
	.endr

/* Prints "exception V at RIP [error E]" (the two words above the vector) and ends. */
unexpected:
	lea s_exc(%rip), %rsi
	call puts
	mov (%rsp), %rax
	call puthex
	lea s_rip(%rip), %rsi
	call puts
	mov 8(%rsp), %rax
	call puthex
	mov $' ', %al
	call putc
	mov 16(%rsp), %rax
	call puthex
	call newline
	mov $0x7f, %al
	out %al, $0xf4
1:	hlt
	jmp 1b

/* CMOS byte al -> al. */
cmos_read:
	out %al, $0x70
	in $0x71, %al
	ret

/* Writes bl to CMOS byte al. */
cmos_write:
	out %al, $0x70
	mov %bl, %al
	out %al, $0x71
	ret

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

/* put2: al as two hex digits. Clobbers rax, rcx, rdx. */
put2:
	push %rax
	shr $4, %al
	call hexdigit
	pop %rax
hexdigit:
	and $0xf, %al
	add $'0', %al
	cmp $'9', %al
	jbe 1f
	add $'a' - '9' - 1, %al
1:	jmp putc

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
	test $0xf, %al
	jnz 2f
	test %ecx, %ecx
	jz 2f
	sub $4, %ecx
	jmp 1b
2:	mov %rbx, %rax
	shr %cl, %rax
	push %rcx
	call hexdigit
	pop %rcx
	sub $4, %ecx
	jns 2b
	pop %rbx
	ret

s_boot: .asciz "boot "
s_apic: .asciz "apicid "
s_cr3: .asciz "cr3 "
s_ready: .asciz "ready\n"
s_r14: .asciz "r14 "
s_nmi: .asciz "nmi "
s_pwrbtn: .asciz "pwrbtn\n"
s_cmd: .asciz "cmd "
s_ptes: .asciz "ptes"
s_user: .asciz "user done\n"
s_db: .asciz "db dr6 "
s_rip: .asciz " rip "
s_rtc: .asciz "rtc"
s_probe: .asciz "probe "
s_ok: .asciz " ok\n"
s_bad: .asciz " bad\n"
s_pf: .asciz " pf "
s_exc: .asciz "exception "
s_dr: .asciz "dr dr0 "
s_dr7: .asciz " dr7 "

	.balign 16
gdt:
	.quad 0
	.quad 0x00af9a000000ffff        /* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff        /* 0x10 kernel data */
	.quad 0x00cff2000000ffff        /* 0x18 user data */
	.quad 0x00affa000000ffff        /* 0x20 user code, 64-bit */
	.quad 0, 0                      /* 0x28 TSS */
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
	.balign 16
tss:
	.long 0
	.quad RSP0
	.fill 104 - 12, 1, 0
	.balign 8
saved_rsp: .quad 0
last_r14: .quad 0
nmi_count: .quad 0
nmi_seen: .quad 0
db_count: .quad 0
db_seen: .quad 0
db_dr6: .quad 0
db_rip: .quad 0
pf_resume: .quad 0
pf_err: .quad 0
last_cmd: .byte 0

	.section .note.GNU-stack, "", @progbits
