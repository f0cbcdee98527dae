/*
 * mmio_exec.S: jumps into the legacy VGA window at 0xA0000, which is not RAM
 * in a dhyve machine: KVM cannot fetch the next instruction and stops the
 * vCPU with an internal error (emulation failure). Real mode.
 */
	.code16
	.text
	.globl _start
_start:
	ljmp $0xa000, $0

	.section .note.GNU-stack, "", @progbits
