/*
 * poweroff.S: powers the machine off through ACPI: SLP_TYP = 5 (dhyve's S5)
 * with SLP_EN, a 16-bit write to the PM1a control register at port 0x404.
 * Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	movw $0x404, %dx
	movw $((5 << 10) | (1 << 13)), %ax
	outw %ax, %dx
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
