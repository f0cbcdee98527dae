# Decoder corpus, 64-bit mode: the general-purpose integer set with
# prefixes, REX combinations and every addressing form. GNU as, Intel syntax.
# cpu/x86/decode_test.ts assembles it and compares the decoder with objdump.
        .intel_syntax noprefix
        .code64
        .text
start:
# --- ALU: every form, sizes, immediates (imm8 sign-extended, imm32, 66h imm16)
        .irp op, add, or, adc, sbb, and, sub, xor, cmp
        \op al, 0x12
        \op ax, 0x1234
        \op eax, 0x12345678
        \op rax, -2
        \op rax, 0x7fffffff
        \op cl, bl
        \op r9b, sil
        \op cx, dx
        \op ecx, r10d
        \op r11, r12
        \op BYTE PTR [rax], 0x7f
        \op WORD PTR [rbx+0x10], 0x1234
        \op WORD PTR [rbx+0x10], 5
        \op DWORD PTR [rcx+rdx*4], -1
        \op QWORD PTR [rip+0x100], 0x1000
        \op QWORD PTR [rsp+0x8], rax
        \op r8, QWORD PTR [r13]
        \op ah, bh
        \op ch, BYTE PTR [rsi]
        .endr
# --- addressing forms (SIB, no base, no index, rbp/r13, rsp/r12, RIP, 32-bit addressing, segments)
        .irp m, [rax], [rsp], [rbp], [r12], [r13], [rax+rcx*1], [rax+rcx*2+0x1], [rax+rcx*4+0x10], [r8+r9*8-0x80], [rsp+rbp*2], [rbp+0x12345678], [rip+0x100], [rip-0x100], [rcx*8+0x40], [0x1234], [eax], [esp+8], [ebp-4], [eax+ebx*4], [r10d+r11d*2], fs:[rax], gs:[0x10], fs:[rip+0x20], gs:[rbx+rsi*8]
        mov eax, DWORD PTR \m
        mov QWORD PTR \m, r15
        .endr
        .irp m, [rax], [rsp], [rbp], [r13], [rax+rcx*4+0x10], [r8+r9*8-0x80], [rip+0x100], [rcx*8+0x40], [0x1234], [eax], [ebp-4]
        lea rdx, \m
        lea ecx, \m
        lea ax, \m
        .endr
        mov eax, DWORD PTR cs:[rax]
        mov eax, DWORD PTR ds:[rax]
        mov eax, DWORD PTR es:[rax]
        mov eax, DWORD PTR ss:[rax]
# --- mov forms
        mov al, 0x1
        mov r8b, 0x2
        mov spl, 0x3
        mov ah, 0x4
        mov ax, 0x1234
        mov eax, 0x12345678
        mov r15d, 0x1
        movabs rax, 0x123456789abcdef0
        movabs r10, 0xffffffffffffffff
        mov rax, -1
        mov BYTE PTR [rax], 0x1
        mov WORD PTR [rax], 0x1
        mov DWORD PTR [rax], 0x1
        mov QWORD PTR [rax], -1
        movabs al, ds:0x1122334455667788
        movabs eax, ds:0x1122334455667788
        movabs ds:0x1122334455667788, rax
        movabs ds:0x1122334455667788, ax
        mov eax, ds
        mov rax, fs
        mov ax, ss
        mov WORD PTR [rax], gs
        mov ds, eax
        mov es, WORD PTR [rax]
        mov fs, eax
        movzx eax, bl
        movzx eax, BYTE PTR [rax]
        movzx rax, WORD PTR [rax]
        movzx ax, bh
        movsx ecx, dl
        movsx rcx, WORD PTR [rsi]
        movsxd rax, ecx
        movsxd r8, DWORD PTR [rdi+0x10]
# --- inc/dec/neg/not/mul/div/imul
        .irp op, inc, dec, neg, not, mul, imul, div, idiv
        \op bl
        \op si
        \op r9d
        \op QWORD PTR [rax+rbx*8]
        .endr
        imul eax, ecx
        imul rax, QWORD PTR [rdx]
        imul eax, ecx, 0x10
        imul ax, cx, 0x1234
        imul rax, rcx, -0x80000000
        imul r8, QWORD PTR [r9], 0x7f
        test al, 0x1
        test eax, 0x10000
        test rax, -1
        test cl, dl
        test QWORD PTR [rax], rbx
        test BYTE PTR [rax], 0x80
        test WORD PTR [rax], 0x8000
        test DWORD PTR [rax], 0x80000000
        .byte 0xf6, 0xc8, 0x12          # test al,0x12 (F6 /1 alias)
        .byte 0xf7, 0x48, 0x04, 0x78, 0x56, 0x34, 0x12 # test DWORD PTR [rax+4],imm32 (F7 /1)
# --- shifts and rotates
        .irp op, rol, ror, rcl, rcr, shl, shr, sar
        \op al, 1
        \op ax, cl
        \op eax, 5
        \op QWORD PTR [rax], 1
        \op DWORD PTR [rbx], cl
        \op r12, 63
        .endr
        .byte 0xd1, 0xf0                # sal eax,1 (D1 /6, objdump: shl)
        shld eax, ebx, 4
        shld QWORD PTR [rax], rcx, cl
        shrd ax, dx, 1
        shrd r8, r9, cl
# --- bit operations
        .irp op, bt, bts, btr, btc
        \op eax, ebx
        \op QWORD PTR [rax], rcx
        \op WORD PTR [rax], 3
        \op r10, 63
        .endr
        bsf eax, ecx
        bsr rax, QWORD PTR [rdx]
        tzcnt eax, ecx
        tzcnt r8, QWORD PTR [r9]
        lzcnt ax, dx
        lzcnt rax, rcx
        popcnt eax, ecx
        popcnt rax, QWORD PTR [rdi]
        popcnt cx, WORD PTR [rsi]
        bswap eax
        bswap r11
        bswap rbx
# --- cmov, set, jcc
        .irp cc, o, no, b, ae, e, ne, be, a, s, ns, p, np, l, ge, le, g
        cmov\cc eax, ecx
        cmov\cc rax, QWORD PTR [rbx]
        set\cc al
        set\cc BYTE PTR [rcx]
        j\cc start
        j\cc near_target
        .endr
near_target:
        .irp n, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35
        nop DWORD PTR [rax+rax*1+0x12345678]
        .endr
        jmp near_target
        jmp start
        jmp far_label
        call far_label
        call rax
        call QWORD PTR [rax+0x8]
        jmp r11
        jmp QWORD PTR [rip+0x10]
        notrack jmp rax
        notrack call QWORD PTR [rbx]
        bnd jmp near_target
        bnd ret
        jmp FWORD PTR [rax]
        call FWORD PTR [rbx]
        ret
        ret 0x8
        .byte 0xcb                      # retf
        .byte 0xca, 0x10, 0x00          # retf 0x10
        .byte 0x48, 0xcb                # retfq
        .byte 0x66, 0xc3                # retw
        .byte 0x66, 0xe8, 0x00, 0x00    # callw (66h near branch: 16-bit on AMD, as objdump)
        .byte 0x66, 0xe9, 0x00, 0x00    # jmpw
        .byte 0x66, 0x0f, 0x84, 0x00, 0x00 # je with 66h: rel16
short_target:
        jrcxz short_target
        jecxz short_target
        loop short_target
        loope short_target
        loopne short_target
        .byte 0x2e, 0x74, 0x00          # cs je (branch hint)
        .byte 0x3e, 0x75, 0x00          # ds jne
        .byte 0x2e, 0xe8, 0x00, 0x00, 0x00, 0x00 # cs call (kernel retpoline padding)
# --- xchg, xadd, cmpxchg, lock
        xchg eax, ecx
        xchg rax, r8
        xchg ax, dx
        xchg r8, rax
        xchg QWORD PTR [rax], rbx
        xchg bl, BYTE PTR [rcx]
        xadd eax, ebx
        lock xadd QWORD PTR [rdi], rax
        cmpxchg ecx, edx
        lock cmpxchg DWORD PTR [rsi+0x4], ecx
        lock cmpxchg8b QWORD PTR [rdi]
        lock cmpxchg16b OWORD PTR [rdi+0x10]
        cmpxchg16b OWORD PTR [r8]
        .irp op, add, or, adc, sbb, and, sub, xor
        lock \op DWORD PTR [rax], ebx
        lock \op QWORD PTR [rax+0x8], 0x1
        .endr
        lock inc QWORD PTR [rax]
        lock dec DWORD PTR [rbx]
        lock not BYTE PTR [rcx]
        lock neg WORD PTR [rdx]
        lock bts QWORD PTR [rax], rcx
        lock btr DWORD PTR [rax], 5
        lock btc WORD PTR [rax], 1
        xacquire lock add DWORD PTR [rax], 1
        xrelease lock sub DWORD PTR [rax], 1
        xrelease mov DWORD PTR [rax], 0
# --- string instructions
        movsb
        movsw
        movsd
        movsq
        rep movsb
        rep movsq
        cmpsb
        repe cmpsq
        repne scasb
        scasd
        stosb
        rep stosq
        lodsb
        lodsq
        insb
        rep insd
        outsb
        rep outsw
        .byte 0x64, 0xa4                # movs with fs: source
        .byte 0x67, 0xa5                # movs with 32-bit addressing
        xlatb
        .byte 0x48, 0xd7                # rex.W xlat
# --- stack
        push rax
        push r15
        push 0x12
        push -1
        push 0x12345678
        push QWORD PTR [rax]
        push fs
        push gs
        pop rbx
        pop r8
        pop QWORD PTR [rsp+0x10]
        pop fs
        pop gs
        .byte 0x66, 0x50                # push ax
        .byte 0x66, 0x6a, 0x01          # pushw imm8
        .byte 0x66, 0x68, 0x34, 0x12    # pushw imm16
        pushf
        popf
        pushfw
        popfw
        enter 0x10, 0x0
        enter 0x1234, 0x3
        leave
        .byte 0x66, 0xc9                # leavew
# --- conversions, flags, misc
        cbw
        cwde
        cdqe
        cwd
        cdq
        cqo
        lahf
        sahf
        clc
        stc
        cmc
        cld
        std
        cli
        sti
        nop
        xchg ax, ax
        .byte 0x48, 0x90                # rex.W nop
        .byte 0x41, 0x90                # xchg r8d, eax
        pause
        nop ax
        nop eax
        nop WORD PTR [rax+rax*1+0x0]
        .byte 0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00 # data16 cs nop
        .byte 0x0f, 0x19, 0xc0          # reserved NOP
        .byte 0x0f, 0x1e, 0x05, 0x00, 0x00, 0x00, 0x00 # reserved NOP, rip-relative
        endbr64
        endbr32
        int3
        int 0x80
        int1
        hlt
        in al, 0x60
        in eax, dx
        in ax, dx
        out 0x80, al
        out dx, eax
        out dx, ax
        crc32 eax, bl
        crc32 eax, WORD PTR [rax]
        crc32 eax, ecx
        crc32 rax, QWORD PTR [rax]
        movbe eax, DWORD PTR [rbx]
        movbe QWORD PTR [rbx], rcx
        movbe WORD PTR [rbx], ax
        adcx eax, ebx
        adcx rax, QWORD PTR [rcx]
        adox r8, r9
        ud2
        ud1 eax, DWORD PTR [rax]
        ud0 ecx, edx
        xbegin near_target
        xend
        xabort 0x1
        xtest
        movnti DWORD PTR [rax], ecx
        movnti QWORD PTR [rax], r8
# --- BMI1/BMI2 (VEX)
        andn eax, ebx, ecx
        andn r8, r9, QWORD PTR [r10]
        bextr eax, ecx, edx
        bextr rax, QWORD PTR [rcx], rdx
        blsi eax, ecx
        blsmsk rax, rcx
        blsr r11d, DWORD PTR [rax]
        bzhi eax, ecx, edx
        pdep rax, rbx, rcx
        pext eax, ebx, DWORD PTR [rcx]
        mulx r8, r9, r10
        rorx eax, ecx, 0x5
        rorx rax, QWORD PTR [rcx], 0x3f
        sarx eax, ecx, edx
        shlx rax, rcx, rdx
        shrx r12d, DWORD PTR [r13], r14d
far_label:
        nop
