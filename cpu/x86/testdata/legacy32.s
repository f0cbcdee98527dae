# Decoder corpus, 32-bit protected mode: legacy-only opcodes, 16- and
# 32-bit addressing, operand-size prefixes. GNU as, Intel syntax.
        .intel_syntax noprefix
        .code32
        .text
start:
        .irp m, [eax], [esp], [ebp], [ebp+0x8], [esp+0x10], [eax+ecx*1], [eax+ecx*8-0x4], [ecx*4+0x100], [0x12345678], [bx+si], [bx+di+0x4], [bp+si], [bp-0x2], [si], [di+0x1234], [bx], fs:[eax], es:[edi], ss:[ebp], cs:[0x10]
        mov eax, DWORD PTR \m
        mov WORD PTR \m, cx
        add BYTE PTR \m, 0x1
        .endr
        push es
        push cs
        push ss
        push ds
        pop es
        pop ss
        pop ds
        push fs
        pop gs
        pushw es
        pusha
        popa
        pushad
        popad
        pushaw
        popaw
        pushf
        pushfw
        popf
        daa
        das
        aaa
        aas
        aam
        aad
        aam 0x10
        aad 0x7
        into
        inc eax
        dec ecx
        inc ax
        dec di
        push eax
        push ax
        pop ebx
        push 0x12345678
        push 0x12
        pushw 0x1234
        les eax, FWORD PTR [ebx]
        lds si, DWORD PTR [eax]
        lss esp, FWORD PTR [eax]
        lfs eax, FWORD PTR [eax]
        lgs ax, DWORD PTR [eax]
        bound eax, QWORD PTR [ebx]
        bound ax, DWORD PTR [ebx]
        arpl WORD PTR [eax], bx
        arpl cx, dx
        .byte 0x82, 0xc0, 0x01          # add al,1 (82 alias)
        jmp 0x10:0x1234
        call 0x8:0x5678
        .byte 0x66, 0xea, 0x34, 0x12, 0x10, 0x00 # jmp ptr16:16
        jmp FWORD PTR [eax]
        call FWORD PTR [ebx]
        jmp DWORD PTR [eax]
        call eax
        ret
        ret 0x4
        retf
        .byte 0x66, 0xcb                # retfw
        iret
        iretw
        jcxz 1f
        jecxz 1f
        loop 1f
1:      jmp 1b
        call 1b
        .byte 0x66, 0xe8, 0x00, 0x00    # callw
        movsb
        movsw
        movsd
        .byte 0x2e, 0xa5                # movs with cs: source
        .byte 0x67, 0xa4                # movs with 16-bit addressing
        rep stosd
        repne scasb
        xlatb
        mov eax, cr0
        mov cr3, eax
        mov cr4, ebx
        mov ebx, dr7
        mov eax, ds
        mov ds, ax
        mov es, WORD PTR [eax]
        lgdt [eax]
        lidt [eax]
        sgdt [eax]
        .byte 0x66, 0x0f, 0x01, 0x10    # lgdtw
        lldt ax
        ltr WORD PTR [eax]
        sysenter
        sysexit
        sysret
        syscall
        movzx eax, BYTE PTR [eax]
        movzx ax, bl
        movsx eax, WORD PTR [eax]
        cbw
        cwde
        cwd
        cdq
        bswap eax
        cmpxchg8b QWORD PTR [eax]
        lock cmpxchg8b QWORD PTR [esi]
        xchg eax, ebx
        xchg ax, cx
        lock xadd DWORD PTR [eax], ecx
        in al, dx
        out dx, ax
        insw
        outsd
        rdtsc
        cpuid
        wrmsr
        hlt
        int3
        int 0x21
        fninit
        fnstsw ax
        fld QWORD PTR [eax]
        fnsave [eax]
        .byte 0x66, 0xdd, 0x30          # fnsavew
        fxsave [eax]
        xsave [eax]
        xrstor [edi]
        ldmxcsr DWORD PTR [eax]
        movd xmm0, eax
        movq xmm1, QWORD PTR [eax]
        pxor xmm0, xmm1
        movdqu xmm2, XMMWORD PTR [ebx]
        popcnt eax, ecx
        tzcnt ax, bx
        clac
        stac
        vmovd xmm5, ecx
        vpxor ymm0, ymm1, ymm2
        shlx eax, ebx, ecx
        nop DWORD PTR [eax+eax*1+0x0]
        nop WORD PTR [eax+eax*1+0x0]
        endbr32
        pause
        .byte 0x0f, 0x00, 0xc0          # sldt eax
        .byte 0x66, 0x0f, 0x00, 0xc0    # sldt ax
        .byte 0xf0, 0x0f, 0x22, 0xc0    # mov cr8,eax (AMD alternative encoding)
