# Decoder corpus, 64-bit mode: system instructions, x87, the FXSAVE/XSAVE
# family, SSE..SSE4.2 and common AVX/AVX2 forms. GNU as, Intel syntax.
        .intel_syntax noprefix
        .code64
        .text
# --- system
        clac
        stac
        lgdt [rax]
        lidt [rbx+0x10]
        sgdt [rcx]
        sidt [rdx]
        lldt ax
        lldt WORD PTR [rax]
        ltr cx
        ltr WORD PTR [rbx]
        sldt eax
        sldt WORD PTR [rax]
        str edx
        str WORD PTR [rcx]
        smsw eax
        smsw WORD PTR [rax]
        lmsw ax
        verr ax
        verw WORD PTR [rax]
        lar eax, ecx
        lsl rax, WORD PTR [rbx]
        clts
        mov rax, cr0
        mov cr0, rax
        mov rbx, cr2
        mov cr3, rcx
        mov rdx, cr4
        mov cr4, rdx
        mov r8, cr8
        mov cr8, r9
        mov rax, dr0
        mov dr7, rax
        mov r10, dr6
        wrmsr
        rdmsr
        rdtsc
        rdtscp
        rdpmc
        rdpid rax
        cpuid
        hlt
        invlpg [rax]
        invlpg BYTE PTR [rip+0x10]
        invpcid rax, [rbx]
        invd
        wbinvd
        wbnoinvd
        swapgs
        syscall
        sysretd
        sysretq
        sysenter
        sysexitd
        sysexitq
        xgetbv
        xsetbv
        monitor rax, ecx, edx
        mwait eax, ecx
        monitorx rax, ecx, edx
        mwaitx eax, ecx, ebx
        clflush [rax]
        clflushopt [rbx+0x40]
        clwb [rcx]
        lfence
        mfence
        sfence
        prefetcht0 [rax]
        prefetcht1 [rax+0x40]
        prefetcht2 [rax]
        prefetchnta [rax]
        prefetchw [rdi]
        prefetch [rsi]
        rdrand eax
        rdrand rcx
        rdrand ax
        rdseed edx
        rdseed r9
        rdfsbase rax
        rdfsbase eax
        rdgsbase rcx
        wrfsbase rdx
        wrgsbase r11
        rdpkru
        wrpkru
        serialize
        vmcall
        vmmcall
        vmlaunch
        vmresume
        vmxoff
        vmfunc
        vmrun
        vmload
        vmsave
        stgi
        clgi
        invlpga
        encls
        enclu
        vmread rax, rbx
        vmwrite rcx, QWORD PTR [rdx]
        vmptrld QWORD PTR [rax]
        vmptrst QWORD PTR [rax]
        vmclear QWORD PTR [rax]
        vmxon QWORD PTR [rax]
        invept rax, OWORD PTR [rbx]
        invvpid rcx, OWORD PTR [rdx]
        iretq
        iretd
        .byte 0x66, 0xcf                # iretw
        rsm
        getsec
        ud2
        int3
        .byte 0xf3, 0x0f, 0x01, 0xd9    # vmgexit
        tpause eax
        umwait ecx
        umonitor rax
        .byte 0x0f, 0x01, 0xee          # rdpkru
        xsusldtrk
        xresldtrk
# --- FXSAVE/XSAVE, MXCSR
        fxsave [rax]
        fxrstor [rbx]
        fxsave64 [rcx]
        fxrstor64 [rdx+0x200]
        xsave [rdi]
        xsave64 [rdi]
        xrstor [rsi]
        xrstor64 [rsi+0x40]
        xsaveopt [rdi]
        xsaveopt64 [rdi]
        xsavec [rdi]
        xsavec64 [rdi]
        xsaves [rdi]
        xsaves64 [rdi]
        xrstors [rsi]
        xrstors64 [rsi]
        ldmxcsr DWORD PTR [rax]
        stmxcsr DWORD PTR [rsp+0x4]
        vldmxcsr DWORD PTR [rax]
        vstmxcsr DWORD PTR [rax]
# --- x87
        fwait
        fninit
        finit
        fnclex
        fclex
        fnstcw WORD PTR [rax]
        fstcw WORD PTR [rax]
        fldcw WORD PTR [rax]
        fnstsw ax
        fstsw ax
        fnstsw WORD PTR [rax]
        fnstenv [rax]
        fstenv [rax]
        fldenv [rax]
        fnsave [rax]
        fsave [rax]
        frstor [rax]
        .irp op, fadd, fmul, fcom, fcomp, fsub, fsubr, fdiv, fdivr
        \op DWORD PTR [rax]
        \op QWORD PTR [rbx]
        .endr
        .irp op, fadd, fmul, fsub, fsubr, fdiv, fdivr
        \op st, st(3)
        \op st(2), st
        .endr
        .irp op, faddp, fmulp, fsubp, fsubrp, fdivp, fdivrp
        \op st(1), st
        .endr
        .irp op, fiadd, fimul, ficom, ficomp, fisub, fisubr, fidiv, fidivr
        \op DWORD PTR [rax]
        \op WORD PTR [rax]
        .endr
        fcom st(1)
        fcomp st(2)
        fcompp
        fucom st(1)
        fucomp st(3)
        fucompp
        fucomi st, st(1)
        fucomip st, st(2)
        fcomi st, st(3)
        fcomip st, st(4)
        .irp cc, b, e, be, u, nb, ne, nbe, nu
        fcmov\cc st, st(1)
        .endr
        fld DWORD PTR [rax]
        fld QWORD PTR [rax]
        fld TBYTE PTR [rax]
        fld st(1)
        fst DWORD PTR [rax]
        fst QWORD PTR [rax]
        fst st(2)
        fstp DWORD PTR [rax]
        fstp QWORD PTR [rax]
        fstp TBYTE PTR [rax]
        fstp st(1)
        fild WORD PTR [rax]
        fild DWORD PTR [rax]
        fild QWORD PTR [rax]
        fist WORD PTR [rax]
        fist DWORD PTR [rax]
        fistp WORD PTR [rax]
        fistp DWORD PTR [rax]
        fistp QWORD PTR [rax]
        fisttp WORD PTR [rax]
        fisttp DWORD PTR [rax]
        fisttp QWORD PTR [rax]
        fbld TBYTE PTR [rax]
        fbstp TBYTE PTR [rax]
        fxch st(1)
        ffree st(2)
        ffreep st(3)
        fnop
        fchs
        fabs
        ftst
        fxam
        fld1
        fldl2t
        fldl2e
        fldpi
        fldlg2
        fldln2
        fldz
        f2xm1
        fyl2x
        fptan
        fpatan
        fxtract
        fprem1
        fdecstp
        fincstp
        fprem
        fyl2xp1
        fsqrt
        fsincos
        frndint
        fscale
        fsin
        fcos
        emms
        femms
# --- SSE/SSE2 moves
        movd xmm0, eax
        movd xmm1, DWORD PTR [rax]
        movd eax, xmm2
        movd DWORD PTR [rax], xmm3
        movq xmm0, rax
        movq rax, xmm0
        movq xmm1, QWORD PTR [rax]
        movq QWORD PTR [rax], xmm1
        movq xmm2, xmm3
        movd mm0, eax
        movq mm1, rax
        movq mm2, QWORD PTR [rax]
        movq QWORD PTR [rax], mm3
        movq mm4, mm5
        movdqa xmm0, XMMWORD PTR [rax]
        movdqa XMMWORD PTR [rax], xmm8
        movdqu xmm9, xmm10
        movdqu XMMWORD PTR [rsi+0x10], xmm15
        movaps xmm0, xmm1
        movaps XMMWORD PTR [rax], xmm2
        movups xmm3, XMMWORD PTR [rbx]
        movapd xmm4, xmm5
        movupd XMMWORD PTR [rcx], xmm6
        movss xmm0, DWORD PTR [rax]
        movss DWORD PTR [rax], xmm0
        movss xmm1, xmm2
        movsd xmm0, QWORD PTR [rax]
        movsd QWORD PTR [rax], xmm1
        movsd xmm1, xmm2
        movlps xmm0, QWORD PTR [rax]
        movlps QWORD PTR [rax], xmm0
        movhps xmm1, QWORD PTR [rax]
        movhps QWORD PTR [rax], xmm1
        movlpd xmm0, QWORD PTR [rax]
        movhpd QWORD PTR [rax], xmm0
        movhlps xmm0, xmm1
        movlhps xmm2, xmm3
        movntps XMMWORD PTR [rax], xmm0
        movntpd XMMWORD PTR [rax], xmm0
        movntdq XMMWORD PTR [rax], xmm0
        movntdqa xmm0, XMMWORD PTR [rax]
        movntq QWORD PTR [rax], mm0
        movmskps eax, xmm0
        movmskpd ecx, xmm1
        pmovmskb edx, xmm2
        pmovmskb eax, mm3
        movq2dq xmm0, mm1
        movdq2q mm0, xmm1
        maskmovdqu xmm0, xmm1
        maskmovq mm0, mm1
        lddqu xmm0, [rax]
        movddup xmm0, xmm1
        movsldup xmm0, XMMWORD PTR [rax]
        movshdup xmm0, xmm1
# --- SSE integer
        .irp op, pxor, por, pand, pandn, paddb, paddw, paddd, paddq, psubb, psubw, psubd, psubq, paddsb, paddsw, paddusb, paddusw, psubsb, psubsw, psubusb, psubusw, pcmpeqb, pcmpeqw, pcmpeqd, pcmpgtb, pcmpgtw, pcmpgtd, punpcklbw, punpcklwd, punpckldq, punpckhbw, punpckhwd, punpckhdq, packsswb, packssdw, packuswb, pmullw, pmulhw, pmulhuw, pmuludq, pmaddwd, psadbw, pavgb, pavgw, pminub, pmaxub, pminsw, pmaxsw, psllw, pslld, psllq, psrlw, psrld, psrlq, psraw, psrad
        \op xmm0, xmm1
        \op xmm8, XMMWORD PTR [rax+0x10]
        \op mm0, mm1
        .endr
        .irp op, pxor, paddd, psubq, pcmpeqb, packsswb, pmuludq, psllq, psrad, punpckhdq
        \op mm2, QWORD PTR [rax]
        .endr
        punpcklbw mm0, DWORD PTR [rax]
        punpckldq mm1, DWORD PTR [rax]
        punpcklqdq xmm0, xmm1
        punpckhqdq xmm0, XMMWORD PTR [rax]
        pshufd xmm0, xmm1, 0x1b
        pshufhw xmm0, XMMWORD PTR [rax], 0x1
        pshuflw xmm0, xmm1, 0x2
        pshufw mm0, mm1, 0x3
        psllw xmm0, 3
        pslld xmm1, 4
        psllq xmm2, 5
        psrlw xmm3, 6
        psrld xmm4, 7
        psrlq xmm5, 8
        psraw xmm6, 9
        psrad xmm7, 10
        pslldq xmm8, 1
        psrldq xmm9, 2
        psllw mm0, 3
        psrlq mm1, 4
        psrad mm2, 5
        pinsrw xmm0, eax, 1
        pinsrw xmm0, WORD PTR [rax], 2
        pinsrw mm0, eax, 3
        pextrw eax, xmm1, 4
        pextrw eax, mm1, 5
# --- SSE float arithmetic and conversions
        .irp op, add, sub, mul, div, min, max, sqrt
        \op\()ps xmm0, xmm1
        \op\()pd xmm0, XMMWORD PTR [rax]
        \op\()ss xmm2, DWORD PTR [rbx]
        \op\()sd xmm3, xmm4
        .endr
        rcpps xmm0, xmm1
        rcpss xmm0, DWORD PTR [rax]
        rsqrtps xmm0, xmm1
        rsqrtss xmm0, xmm1
        andps xmm0, xmm1
        andnps xmm0, xmm1
        orps xmm0, xmm1
        xorps xmm0, xmm1
        andpd xmm0, xmm1
        xorpd xmm0, XMMWORD PTR [rax]
        ucomiss xmm0, xmm1
        ucomiss xmm0, DWORD PTR [rax]
        comiss xmm0, xmm1
        ucomisd xmm0, QWORD PTR [rax]
        comisd xmm0, xmm1
        shufps xmm0, xmm1, 0x44
        shufpd xmm0, XMMWORD PTR [rax], 0x1
        unpcklps xmm0, xmm1
        unpckhps xmm0, xmm1
        unpcklpd xmm0, xmm1
        unpckhpd xmm0, xmm1
        cmpeqps xmm0, xmm1
        cmpltpd xmm0, xmm1
        cmpless xmm0, DWORD PTR [rax]
        cmpunordsd xmm0, xmm1
        cmpneqps xmm0, xmm1
        cmpnltps xmm0, xmm1
        cmpnleps xmm0, xmm1
        cmpordps xmm0, xmm1
        cmpps xmm0, xmm1, 0x8
        cvtsi2ss xmm0, eax
        cvtsi2sd xmm0, rax
        cvtsi2ss xmm0, DWORD PTR [rax]
        cvtsi2sd xmm1, QWORD PTR [rax]
        cvttss2si eax, xmm0
        cvttsd2si rax, xmm0
        cvtss2si eax, DWORD PTR [rax]
        cvtsd2si rax, QWORD PTR [rax]
        cvtss2sd xmm0, xmm1
        cvtsd2ss xmm0, QWORD PTR [rax]
        cvtps2pd xmm0, xmm1
        cvtpd2ps xmm0, xmm1
        cvtdq2ps xmm0, xmm1
        cvtps2dq xmm0, xmm1
        cvttps2dq xmm0, xmm1
        cvtdq2pd xmm0, xmm1
        cvtpd2dq xmm0, xmm1
        cvttpd2dq xmm0, xmm1
        cvtpi2ps xmm0, mm1
        cvtpi2pd xmm0, QWORD PTR [rax]
        cvtps2pi mm0, xmm1
        cvttps2pi mm0, xmm1
        cvtpd2pi mm0, xmm1
        cvttpd2pi mm0, xmm1
# --- SSE3/SSSE3/SSE4.1/SSE4.2/AES/CLMUL/SHA
        addsubps xmm0, xmm1
        addsubpd xmm0, xmm1
        haddps xmm0, xmm1
        haddpd xmm0, xmm1
        hsubps xmm0, xmm1
        hsubpd xmm0, xmm1
        .irp op, pshufb, phaddw, phaddd, phaddsw, pmaddubsw, phsubw, phsubd, phsubsw, psignb, psignw, psignd, pmulhrsw, pabsb, pabsw, pabsd
        \op xmm0, xmm1
        \op mm0, QWORD PTR [rax]
        .endr
        palignr xmm0, xmm1, 0x4
        palignr mm0, mm1, 0x2
        .irp op, pmuldq, pcmpeqq, packusdw, pcmpgtq, pminsb, pminsd, pminuw, pminud, pmaxsb, pmaxsd, pmaxuw, pmaxud, pmulld, phminposuw, ptest
        \op xmm0, xmm1
        \op xmm9, XMMWORD PTR [rax]
        .endr
        .irp op, pmovsxbw, pmovsxbd, pmovsxbq, pmovsxwd, pmovsxwq, pmovsxdq, pmovzxbw, pmovzxbd, pmovzxbq, pmovzxwd, pmovzxwq, pmovzxdq
        \op xmm0, xmm1
        .endr
        pmovzxbw xmm0, QWORD PTR [rax]
        pmovzxbd xmm0, DWORD PTR [rax]
        pmovzxbq xmm0, WORD PTR [rax]
        pblendvb xmm0, xmm1, xmm0
        blendvps xmm0, xmm1, xmm0
        blendvpd xmm0, XMMWORD PTR [rax], xmm0
        roundps xmm0, xmm1, 0x1
        roundpd xmm0, xmm1, 0x2
        roundss xmm0, xmm1, 0x3
        roundsd xmm0, QWORD PTR [rax], 0x4
        blendps xmm0, xmm1, 0x5
        blendpd xmm0, xmm1, 0x1
        pblendw xmm0, xmm1, 0xf0
        pextrb eax, xmm0, 0x1
        pextrb BYTE PTR [rax], xmm0, 0x2
        pextrw WORD PTR [rax], xmm0, 0x3
        pextrd eax, xmm0, 0x1
        pextrq rax, xmm0, 0x1
        extractps eax, xmm0, 0x2
        pinsrb xmm0, eax, 0x1
        pinsrb xmm0, BYTE PTR [rax], 0x1
        pinsrd xmm0, eax, 0x2
        pinsrq xmm0, rax, 0x1
        insertps xmm0, xmm1, 0x10
        dpps xmm0, xmm1, 0xff
        dppd xmm0, xmm1, 0x31
        mpsadbw xmm0, xmm1, 0x0
        pcmpestri xmm0, xmm1, 0x0
        pcmpestrm xmm0, XMMWORD PTR [rax], 0x1
        pcmpistri xmm0, xmm1, 0x2
        pcmpistrm xmm0, xmm1, 0x3
        aesenc xmm0, xmm1
        aesenclast xmm0, xmm1
        aesdec xmm0, xmm1
        aesdeclast xmm0, XMMWORD PTR [rax]
        aesimc xmm0, xmm1
        aeskeygenassist xmm0, xmm1, 0x1
        pclmulqdq xmm0, xmm1, 0x0
        pclmulqdq xmm0, xmm1, 0x11
        pclmulqdq xmm0, xmm1, 0x5
        sha1rnds4 xmm0, xmm1, 0x1
        sha1nexte xmm0, xmm1
        sha1msg1 xmm0, xmm1
        sha1msg2 xmm0, xmm1
        sha256rnds2 xmm0, xmm1, xmm0
        sha256msg1 xmm0, xmm1
        sha256msg2 xmm0, xmm1
        gf2p8mulb xmm0, xmm1
        gf2p8affineqb xmm0, xmm1, 0x1
# --- AVX/AVX2 (names and lengths)
        vmovd xmm5, ecx
        vmovq xmm0, rax
        vmovq rax, xmm1
        vmovdqa xmm14, XMMWORD PTR [rip+0x100]
        vmovdqa ymm8, YMMWORD PTR [rax-0x40]
        vmovdqu ymm6, YMMWORD PTR [rsi]
        vmovdqu XMMWORD PTR [rdi+0x10], xmm1
        vmovaps ymm0, ymm1
        vmovups xmm2, XMMWORD PTR [rax]
        vmovss xmm0, DWORD PTR [rax]
        vmovss xmm0, xmm1, xmm2
        vmovsd QWORD PTR [rax], xmm0
        vpaddd xmm0, xmm0, xmm8
        vpaddq ymm1, ymm2, YMMWORD PTR [rax]
        vpxor xmm3, xmm4, xmm15
        vpand ymm0, ymm1, ymm2
        vpor xmm0, xmm1, xmm2
        vpshufd xmm0, xmm0, 0x93
        vpshufb ymm0, ymm1, ymm2
        vpsrld xmm0, xmm1, 0x7
        vpslldq ymm0, ymm1, 0x4
        vpcmpeqb ymm0, ymm1, ymm2
        vpmovmskb eax, ymm0
        vaddps ymm0, ymm1, ymm2
        vaddss xmm0, xmm1, DWORD PTR [rax]
        vmulpd xmm0, xmm1, xmm2
        vsqrtps ymm0, ymm1
        vsqrtss xmm0, xmm1, xmm2
        vxorps xmm0, xmm0, xmm0
        vcmpeqps ymm0, ymm1, ymm2
        vcmptrue_usps xmm0, xmm1, xmm2
        vucomiss xmm0, xmm1
        vcvtsi2sd xmm0, xmm1, rax
        vcvttsd2si eax, xmm0
        vcvtdq2pd ymm0, xmm1
        vextracti128 xmm8, ymm8, 0x1
        vinserti128 ymm0, ymm1, xmm2, 0x1
        vextractf128 XMMWORD PTR [rax], ymm0, 0x1
        vinsertf128 ymm0, ymm1, XMMWORD PTR [rax], 0x0
        vperm2i128 ymm0, ymm1, ymm2, 0x20
        vpermq ymm0, ymm1, 0x1b
        vpermd ymm0, ymm1, ymm2
        vpbroadcastd ymm0, xmm1
        vpbroadcastq xmm0, QWORD PTR [rax]
        vbroadcastss ymm0, DWORD PTR [rax]
        vpblendd ymm0, ymm1, ymm2, 0x3
        vblendvps ymm0, ymm1, ymm2, ymm3
        vpsllvd ymm0, ymm1, ymm2
        vpsrlvq xmm0, xmm1, xmm2
        vptest ymm0, ymm1
        vpinsrd xmm0, xmm1, eax, 0x1
        vpextrq rax, xmm1, 0x1
        vaesenc xmm0, xmm1, xmm2
        vpclmulqdq xmm0, xmm1, xmm2, 0x0
        vfmadd231ps ymm0, ymm1, ymm2
        vfmadd132sd xmm0, xmm1, QWORD PTR [rax]
        vfnmsub213pd xmm0, xmm1, xmm2
        vzeroupper
        vzeroall
        ldtilecfg [rax]
        sttilecfg [rax]
        tilerelease
# --- AVX-512 (a few)
        vprord xmm3, xmm3, 0x10
        vpermi2d ymm8, ymm6, ymm7
        vpaddd zmm1{k1}{z}, zmm2, [rax+0x40]
        vmovdqu64 zmm0, [rdi+0x80]
        vpxord zmm0, zmm1, [rsi]
        vpternlogd zmm0, zmm1, zmm2, 0x96
        kmovw k1, eax
        kmovq k2, k3
        kandw k1, k2, k3
        knotb k1, k2
        kortestw k0, k1
# --- 3DNow! and XOP lengths
        pfadd mm0, mm1
        pfmul mm2, QWORD PTR [rax]
        pi2fd mm0, mm1
        pswapd mm0, mm1
        vprotb xmm0, xmm1, xmm2
        vprotd xmm0, xmm1, 0x5
