/*
 * pci_probe.S: Linux's check for PCI configuration mechanism #1
 * (arch/x86/pci/direct.c, pci_check_type1): write 0x01 to port 0xCFB, read
 * CONFIG_ADDRESS, write 0x80000000 to it and read it back. Then it reads the
 * vendor/device of 00:00.0 through CONFIG_DATA. It ends through the
 * debug-exit port with 1 when the address read back is 0x80000000 and the
 * host bridge answered, else 0: exit status 3 or 1. Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	movw $0xcfb, %dx
	movb $0x01, %al
	outb %al, %dx
	movw $0xcf8, %dx
	inl %dx, %eax
	movl $0x80000000, %eax
	outl %eax, %dx
	inl %dx, %eax
	xorb %bl, %bl
	cmpl $0x80000000, %eax
	jne done
	movw $0xcfc, %dx        /* 00:00.0 register 0: device << 16 | vendor */
	inl %dx, %eax
	cmpl $0xffffffff, %eax
	je done
	movb $1, %bl
done:
	movb %bl, %al
	outb %al, $0xf4
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
