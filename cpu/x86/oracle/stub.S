/*
 * The native side of dhyve's x86 oracle: runs one instruction at CPL3 with
 * every general-purpose register (RSP too), RFLAGS, XMM0-15, the upper
 * halves of YMM0-15 (with AVX), ZMM0-31 and k0-k7 (with AVX-512), MXCSR and the x87 control word loaded from
 * oracle_in, and stores the same state into oracle_out afterwards.
 *
 * The instruction under test sits in a page of its own, followed by
 * `jmp qword ptr [rip+disp]` to oracle_done (harness.c put_jmp), so that
 * neither a register nor a flag is spent on getting back; a taken branch
 * lands on another such jump to oracle_done_taken. The stub's own pushfq
 * afterwards uses a private stack (oracle_stack); a fault is delivered on
 * the sigaltstack set up in harness.c (through oracle_signal_entry), whose
 * handler resumes at oracle_fault_return. oracle_running is 1 exactly while
 * the instruction under test may be executing.
 *
 * Layout of struct oracle_regs (harness.c, _oracle.ts):
 *   0   gpr[16]  (rax rcx rdx rbx rsp rbp rsi rdi r8-r15)
 *   128 rflags
 *   136 rip
 *   144 xmm[16][16]
 *   400 ymmh[16][16]  bits 255:128 of ymm0-15 (only when oracle_avx != 0)
 *   656 mxcsr
 *   660 fcw (x87 control word)
 *   662 fsw (x87 status word, stored only)
 *   672 zmmh[16][32]  bits 511:256 of zmm0-15 (only when oracle_avx512 != 0)
 *   1184 zmm_hi16[16][64]  zmm16-31 (same)
 *   2208 k[8]  k0-k7, bits 15:0 (kmovw; same)
 *   2272 mem[] (copied by harness.c, not touched here)
 */
        .intel_syntax noprefix

        .bss
        .balign 64
        .globl  oracle_in, oracle_out, oracle_code, oracle_saved_rsp, oracle_avx, oracle_taken
        .globl  oracle_avx512
        .globl  oracle_running
oracle_in:          .skip 4096
oracle_out:         .skip 4096
oracle_code:        .skip 8
oracle_saved_rsp:   .skip 8
oracle_avx:         .skip 8
oracle_avx512:      .skip 8
oracle_taken:       .skip 8
oracle_running:     .skip 8
oracle_mxcsr_default: .skip 4
        .balign 64
oracle_stack:       .skip 4096
oracle_stack_top:

        .text
        /* int oracle_run(void): 0 when the instruction completed, 1 after a fault. */
        .globl  oracle_run
        .type   oracle_run, @function
oracle_run:
        push    rbx
        push    rbp
        push    r12
        push    r13
        push    r14
        push    r15
        mov     [rip + oracle_saved_rsp], rsp
        lea     rsp, [rip + oracle_stack_top]
        movdqu  xmm0,  [rip + oracle_in + 144 + 16*0]
        movdqu  xmm1,  [rip + oracle_in + 144 + 16*1]
        movdqu  xmm2,  [rip + oracle_in + 144 + 16*2]
        movdqu  xmm3,  [rip + oracle_in + 144 + 16*3]
        movdqu  xmm4,  [rip + oracle_in + 144 + 16*4]
        movdqu  xmm5,  [rip + oracle_in + 144 + 16*5]
        movdqu  xmm6,  [rip + oracle_in + 144 + 16*6]
        movdqu  xmm7,  [rip + oracle_in + 144 + 16*7]
        movdqu  xmm8,  [rip + oracle_in + 144 + 16*8]
        movdqu  xmm9,  [rip + oracle_in + 144 + 16*9]
        movdqu  xmm10, [rip + oracle_in + 144 + 16*10]
        movdqu  xmm11, [rip + oracle_in + 144 + 16*11]
        movdqu  xmm12, [rip + oracle_in + 144 + 16*12]
        movdqu  xmm13, [rip + oracle_in + 144 + 16*13]
        movdqu  xmm14, [rip + oracle_in + 144 + 16*14]
        movdqu  xmm15, [rip + oracle_in + 144 + 16*15]
        cmp     byte ptr [rip + oracle_avx], 0
        je      2f
        vinsertf128 ymm0, ymm0, [rip + oracle_in + 400 + 16*0], 1
        vinsertf128 ymm1, ymm1, [rip + oracle_in + 400 + 16*1], 1
        vinsertf128 ymm2, ymm2, [rip + oracle_in + 400 + 16*2], 1
        vinsertf128 ymm3, ymm3, [rip + oracle_in + 400 + 16*3], 1
        vinsertf128 ymm4, ymm4, [rip + oracle_in + 400 + 16*4], 1
        vinsertf128 ymm5, ymm5, [rip + oracle_in + 400 + 16*5], 1
        vinsertf128 ymm6, ymm6, [rip + oracle_in + 400 + 16*6], 1
        vinsertf128 ymm7, ymm7, [rip + oracle_in + 400 + 16*7], 1
        vinsertf128 ymm8, ymm8, [rip + oracle_in + 400 + 16*8], 1
        vinsertf128 ymm9, ymm9, [rip + oracle_in + 400 + 16*9], 1
        vinsertf128 ymm10, ymm10, [rip + oracle_in + 400 + 16*10], 1
        vinsertf128 ymm11, ymm11, [rip + oracle_in + 400 + 16*11], 1
        vinsertf128 ymm12, ymm12, [rip + oracle_in + 400 + 16*12], 1
        vinsertf128 ymm13, ymm13, [rip + oracle_in + 400 + 16*13], 1
        vinsertf128 ymm14, ymm14, [rip + oracle_in + 400 + 16*14], 1
        vinsertf128 ymm15, ymm15, [rip + oracle_in + 400 + 16*15], 1
2:
        cmp     byte ptr [rip + oracle_avx512], 0
        je      4f
        vinserti64x4 zmm0, zmm0, [rip + oracle_in + 672 + 32*0], 1
        vinserti64x4 zmm1, zmm1, [rip + oracle_in + 672 + 32*1], 1
        vinserti64x4 zmm2, zmm2, [rip + oracle_in + 672 + 32*2], 1
        vinserti64x4 zmm3, zmm3, [rip + oracle_in + 672 + 32*3], 1
        vinserti64x4 zmm4, zmm4, [rip + oracle_in + 672 + 32*4], 1
        vinserti64x4 zmm5, zmm5, [rip + oracle_in + 672 + 32*5], 1
        vinserti64x4 zmm6, zmm6, [rip + oracle_in + 672 + 32*6], 1
        vinserti64x4 zmm7, zmm7, [rip + oracle_in + 672 + 32*7], 1
        vinserti64x4 zmm8, zmm8, [rip + oracle_in + 672 + 32*8], 1
        vinserti64x4 zmm9, zmm9, [rip + oracle_in + 672 + 32*9], 1
        vinserti64x4 zmm10, zmm10, [rip + oracle_in + 672 + 32*10], 1
        vinserti64x4 zmm11, zmm11, [rip + oracle_in + 672 + 32*11], 1
        vinserti64x4 zmm12, zmm12, [rip + oracle_in + 672 + 32*12], 1
        vinserti64x4 zmm13, zmm13, [rip + oracle_in + 672 + 32*13], 1
        vinserti64x4 zmm14, zmm14, [rip + oracle_in + 672 + 32*14], 1
        vinserti64x4 zmm15, zmm15, [rip + oracle_in + 672 + 32*15], 1
        vmovdqu64 zmm16, [rip + oracle_in + 1184 + 64*0]
        vmovdqu64 zmm17, [rip + oracle_in + 1184 + 64*1]
        vmovdqu64 zmm18, [rip + oracle_in + 1184 + 64*2]
        vmovdqu64 zmm19, [rip + oracle_in + 1184 + 64*3]
        vmovdqu64 zmm20, [rip + oracle_in + 1184 + 64*4]
        vmovdqu64 zmm21, [rip + oracle_in + 1184 + 64*5]
        vmovdqu64 zmm22, [rip + oracle_in + 1184 + 64*6]
        vmovdqu64 zmm23, [rip + oracle_in + 1184 + 64*7]
        vmovdqu64 zmm24, [rip + oracle_in + 1184 + 64*8]
        vmovdqu64 zmm25, [rip + oracle_in + 1184 + 64*9]
        vmovdqu64 zmm26, [rip + oracle_in + 1184 + 64*10]
        vmovdqu64 zmm27, [rip + oracle_in + 1184 + 64*11]
        vmovdqu64 zmm28, [rip + oracle_in + 1184 + 64*12]
        vmovdqu64 zmm29, [rip + oracle_in + 1184 + 64*13]
        vmovdqu64 zmm30, [rip + oracle_in + 1184 + 64*14]
        vmovdqu64 zmm31, [rip + oracle_in + 1184 + 64*15]
        kmovw   k0, [rip + oracle_in + 2208 + 8*0]
        kmovw   k1, [rip + oracle_in + 2208 + 8*1]
        kmovw   k2, [rip + oracle_in + 2208 + 8*2]
        kmovw   k3, [rip + oracle_in + 2208 + 8*3]
        kmovw   k4, [rip + oracle_in + 2208 + 8*4]
        kmovw   k5, [rip + oracle_in + 2208 + 8*5]
        kmovw   k6, [rip + oracle_in + 2208 + 8*6]
        kmovw   k7, [rip + oracle_in + 2208 + 8*7]
4:      ldmxcsr [rip + oracle_in + 656]
        fninit
        fldcw   [rip + oracle_in + 660]
        push    qword ptr [rip + oracle_in + 128]
        popfq
        mov     rax, [rip + oracle_in + 8*0]
        mov     rcx, [rip + oracle_in + 8*1]
        mov     rdx, [rip + oracle_in + 8*2]
        mov     rbx, [rip + oracle_in + 8*3]
        mov     rbp, [rip + oracle_in + 8*5]
        mov     rsi, [rip + oracle_in + 8*6]
        mov     rdi, [rip + oracle_in + 8*7]
        mov     r8,  [rip + oracle_in + 8*8]
        mov     r9,  [rip + oracle_in + 8*9]
        mov     r10, [rip + oracle_in + 8*10]
        mov     r11, [rip + oracle_in + 8*11]
        mov     r12, [rip + oracle_in + 8*12]
        mov     r13, [rip + oracle_in + 8*13]
        mov     r14, [rip + oracle_in + 8*14]
        mov     r15, [rip + oracle_in + 8*15]
        mov     rsp, [rip + oracle_in + 8*4]
        mov     byte ptr [rip + oracle_running], 1
        jmp     qword ptr [rip + oracle_code]

        /* A taken branch lands on a second jmp back, which comes here. */
        .globl  oracle_done_taken
oracle_done_taken:
        mov     byte ptr [rip + oracle_taken], 1
        .globl  oracle_done
oracle_done:
        mov     byte ptr [rip + oracle_running], 0
        mov     [rip + oracle_out + 8*4], rsp
        lea     rsp, [rip + oracle_stack_top]
        pushfq
        mov     [rip + oracle_out + 8*0], rax
        mov     [rip + oracle_out + 8*1], rcx
        mov     [rip + oracle_out + 8*2], rdx
        mov     [rip + oracle_out + 8*3], rbx
        mov     [rip + oracle_out + 8*5], rbp
        mov     [rip + oracle_out + 8*6], rsi
        mov     [rip + oracle_out + 8*7], rdi
        mov     [rip + oracle_out + 8*8], r8
        mov     [rip + oracle_out + 8*9], r9
        mov     [rip + oracle_out + 8*10], r10
        mov     [rip + oracle_out + 8*11], r11
        mov     [rip + oracle_out + 8*12], r12
        mov     [rip + oracle_out + 8*13], r13
        mov     [rip + oracle_out + 8*14], r14
        mov     [rip + oracle_out + 8*15], r15
        pop     rax
        mov     [rip + oracle_out + 128], rax
        movdqu  [rip + oracle_out + 144 + 16*0],  xmm0
        movdqu  [rip + oracle_out + 144 + 16*1],  xmm1
        movdqu  [rip + oracle_out + 144 + 16*2],  xmm2
        movdqu  [rip + oracle_out + 144 + 16*3],  xmm3
        movdqu  [rip + oracle_out + 144 + 16*4],  xmm4
        movdqu  [rip + oracle_out + 144 + 16*5],  xmm5
        movdqu  [rip + oracle_out + 144 + 16*6],  xmm6
        movdqu  [rip + oracle_out + 144 + 16*7],  xmm7
        movdqu  [rip + oracle_out + 144 + 16*8],  xmm8
        movdqu  [rip + oracle_out + 144 + 16*9],  xmm9
        movdqu  [rip + oracle_out + 144 + 16*10], xmm10
        movdqu  [rip + oracle_out + 144 + 16*11], xmm11
        movdqu  [rip + oracle_out + 144 + 16*12], xmm12
        movdqu  [rip + oracle_out + 144 + 16*13], xmm13
        movdqu  [rip + oracle_out + 144 + 16*14], xmm14
        movdqu  [rip + oracle_out + 144 + 16*15], xmm15
        stmxcsr [rip + oracle_out + 656]
        fnstcw  [rip + oracle_out + 660]
        fnstsw  [rip + oracle_out + 662]
        fninit
        cmp     byte ptr [rip + oracle_avx], 0
        je      3f
        vextractf128 [rip + oracle_out + 400 + 16*0], ymm0, 1
        vextractf128 [rip + oracle_out + 400 + 16*1], ymm1, 1
        vextractf128 [rip + oracle_out + 400 + 16*2], ymm2, 1
        vextractf128 [rip + oracle_out + 400 + 16*3], ymm3, 1
        vextractf128 [rip + oracle_out + 400 + 16*4], ymm4, 1
        vextractf128 [rip + oracle_out + 400 + 16*5], ymm5, 1
        vextractf128 [rip + oracle_out + 400 + 16*6], ymm6, 1
        vextractf128 [rip + oracle_out + 400 + 16*7], ymm7, 1
        vextractf128 [rip + oracle_out + 400 + 16*8], ymm8, 1
        vextractf128 [rip + oracle_out + 400 + 16*9], ymm9, 1
        vextractf128 [rip + oracle_out + 400 + 16*10], ymm10, 1
        vextractf128 [rip + oracle_out + 400 + 16*11], ymm11, 1
        vextractf128 [rip + oracle_out + 400 + 16*12], ymm12, 1
        vextractf128 [rip + oracle_out + 400 + 16*13], ymm13, 1
        vextractf128 [rip + oracle_out + 400 + 16*14], ymm14, 1
        vextractf128 [rip + oracle_out + 400 + 16*15], ymm15, 1
        cmp     byte ptr [rip + oracle_avx512], 0
        je      5f
        vextracti64x4 [rip + oracle_out + 672 + 32*0], zmm0, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*1], zmm1, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*2], zmm2, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*3], zmm3, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*4], zmm4, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*5], zmm5, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*6], zmm6, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*7], zmm7, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*8], zmm8, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*9], zmm9, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*10], zmm10, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*11], zmm11, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*12], zmm12, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*13], zmm13, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*14], zmm14, 1
        vextracti64x4 [rip + oracle_out + 672 + 32*15], zmm15, 1
        vmovdqu64 [rip + oracle_out + 1184 + 64*0], zmm16
        vmovdqu64 [rip + oracle_out + 1184 + 64*1], zmm17
        vmovdqu64 [rip + oracle_out + 1184 + 64*2], zmm18
        vmovdqu64 [rip + oracle_out + 1184 + 64*3], zmm19
        vmovdqu64 [rip + oracle_out + 1184 + 64*4], zmm20
        vmovdqu64 [rip + oracle_out + 1184 + 64*5], zmm21
        vmovdqu64 [rip + oracle_out + 1184 + 64*6], zmm22
        vmovdqu64 [rip + oracle_out + 1184 + 64*7], zmm23
        vmovdqu64 [rip + oracle_out + 1184 + 64*8], zmm24
        vmovdqu64 [rip + oracle_out + 1184 + 64*9], zmm25
        vmovdqu64 [rip + oracle_out + 1184 + 64*10], zmm26
        vmovdqu64 [rip + oracle_out + 1184 + 64*11], zmm27
        vmovdqu64 [rip + oracle_out + 1184 + 64*12], zmm28
        vmovdqu64 [rip + oracle_out + 1184 + 64*13], zmm29
        vmovdqu64 [rip + oracle_out + 1184 + 64*14], zmm30
        vmovdqu64 [rip + oracle_out + 1184 + 64*15], zmm31
        kmovw   eax, k0
        mov     [rip + oracle_out + 2208 + 8*0], rax
        kmovw   eax, k1
        mov     [rip + oracle_out + 2208 + 8*1], rax
        kmovw   eax, k2
        mov     [rip + oracle_out + 2208 + 8*2], rax
        kmovw   eax, k3
        mov     [rip + oracle_out + 2208 + 8*3], rax
        kmovw   eax, k4
        mov     [rip + oracle_out + 2208 + 8*4], rax
        kmovw   eax, k5
        mov     [rip + oracle_out + 2208 + 8*5], rax
        kmovw   eax, k6
        mov     [rip + oracle_out + 2208 + 8*6], rax
        kmovw   eax, k7
        mov     [rip + oracle_out + 2208 + 8*7], rax
5:      vzeroupper
3:      mov     dword ptr [rip + oracle_mxcsr_default], 0x1f80
        ldmxcsr [rip + oracle_mxcsr_default]
        /* Clean flags for the C code (a popf under test may have set DF, NT or ID). */
        push    2
        popfq
        mov     rsp, [rip + oracle_saved_rsp]
        xor     eax, eax
        jmp     1f

        /* The signal handler sends a faulting instruction here (DF already clear). */
        .globl  oracle_fault_return
oracle_fault_return:
        mov     rsp, [rip + oracle_saved_rsp]
        mov     eax, 1
1:      pop     r15
        pop     r14
        pop     r13
        pop     r12
        pop     rbp
        pop     rbx
        ret
        .size   oracle_run, . - oracle_run

        /*
         * The signal handler's entry: the kernel keeps RFLAGS.AC as the instruction under
         * test left it, and the C handler must not run into alignment checks itself.
         */
        .globl  oracle_signal_entry
        .type   oracle_signal_entry, @function
oracle_signal_entry:
        pushfq
        and     qword ptr [rsp], ~0x40000
        popfq
        jmp     oracle_on_fault
        .size   oracle_signal_entry, . - oracle_signal_entry

        .section .note.GNU-stack, "", @progbits
