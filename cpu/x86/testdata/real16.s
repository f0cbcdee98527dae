# Decoder corpus, 16-bit (real-mode) code: 16-bit defaults, 66h/67h
# overrides, 16-bit addressing. GNU as, Intel syntax, .code16.
        .intel_syntax noprefix
        .code16
        .text
start:
        .irp m, [bx+si], [bx+di], [bp+si], [bp+di], [si], [di], [bp], [bx], [bx+si+0x12], [bp-0x4], [di+0x1234], [0x1234], [eax], [esp+0x4], [ebp+ecx*2], es:[bx], ss:[si], cs:[di], fs:[bp+0x10], gs:[0x100]
        mov ax, WORD PTR \m
        mov DWORD PTR \m, ecx
        inc BYTE PTR \m
        .endr
        .irp m, [bx+si], [bp+di], [si], [bp], [bx+si+0x12], [bp-0x4], [0x1234], [eax], [ebp+ecx*2]
        lea dx, \m
        .endr
        mov ax, 0x1234
        mov eax, 0x12345678
        mov al, 0x12
        add ax, 0x1
        add eax, 0x1000
        add WORD PTR [bx], 0x1234
        add DWORD PTR [bx], 0x12345678
        push ax
        push eax
        push 0x12
        push 0x1234
        pushd 0x12345678
        pop ds
        push cs
        pushf
        pushfd
        popfd
        pusha
        pushad
        iret
        iretd
        ret
        retf
        .byte 0x66, 0xc3                # retd
        jmp 0x0:0x7c00
        .byte 0x66, 0xea, 0x00, 0x7c, 0x00, 0x00, 0x08, 0x00 # jmp ptr16:32
        call 0xf000:0xfff0
        jmp WORD PTR [bx]
        jmp DWORD PTR [bx]
        call WORD PTR [si]
        call ax
1:      jmp 1b
        call 1b
        jcxz 1b
        jecxz 1b
        loop 1b
        je 1b
        .byte 0x0f, 0x84, 0x00, 0x00    # je rel16
        .byte 0x66, 0xe9, 0x00, 0x00, 0x00, 0x00 # jmpd rel32
        int 0x10
        int 0x13
        int3
        into
        cli
        sti
        hlt
        in al, 0x60
        out 0x80, al
        in ax, dx
        out dx, eax
        rep movsb
        rep movsw
        movsd
        rep stosd
        lodsb
        cmpsw
        xlat
        lgdt [bx]
        lidt [si]
        .byte 0x66, 0x0f, 0x01, 0x17    # lgdtd
        mov eax, cr0
        mov cr0, eax
        mov ds, ax
        mov ss, ax
        mov ax, es
        les di, DWORD PTR [bx]
        lds si, DWORD PTR [bp+0x4]
        aaa
        daa
        aam
        cbw
        cwde
        cwd
        cdq
        movzx ax, BYTE PTR [bx]
        movzx eax, WORD PTR [bx]
        enter 0x4, 0x0
        leave
        .byte 0x66, 0xc9                # leaved
        fninit
        fldcw WORD PTR [bx]
        fnsave [bx]
        .byte 0x66, 0xdd, 0x30          # fnsaved
        nop
        xchg ax, bx
        xchg eax, ebx
        lock inc WORD PTR [bx]
        wbinvd
        rdmsr
        cpuid
