// Tests of the KVM wrappers that need a real /dev/kvm.
import assert from "node:assert/strict";
import {
  checkExtension,
  closeFd,
  createIrqchip,
  createVcpu,
  createVm,
  getDebugregs,
  getFpu,
  getMsrs,
  getRegsRaw,
  getSupportedCpuid,
  getVcpuEvents,
  getXcrs,
  getXsave,
  KvmError,
  openKvm,
  setCpuid2,
  setFpu,
  setMsrs,
  setRegsRaw,
  setVcpuEvents,
  setXcrs,
  setXsave,
  signalMsi,
} from "./kvm.ts";
import { KVM_CAP, KVM_FPU_STRUCT, KVM_REGS_STRUCT, KVM_VCPU_EVENTS_STRUCT } from "./kvm_abi.ts";
import { libc } from "./libc.ts";

// dhyve opens libc once per thread and keeps it: open it before the sanitizers count.
libc();

Deno.test("KVM_SIGNAL_MSI: a message no local APIC accepts is lost (-1), not an error", () => {
  const kvm = openKvm();
  const vm = createVm(kvm);
  try {
    createIrqchip(vm);
    // No vCPU exists, so APIC ID 5 is nobody: KVM's delivery finds no
    // destination and returns a bare -1 (EPERM).
    assert.equal(signalMsi(vm, 0xfee05000, 0x30), -1);
  } finally {
    closeFd(vm);
    closeFd(kvm);
  }
});

/** A VM with one vCPU given KVM's supported CPUID (no memory: nothing runs), closed after `fn`. */
function withVcpu(fn: (vcpu: number, vm: number) => void): void {
  const kvm = openKvm();
  const vm = createVm(kvm);
  try {
    createIrqchip(vm);
    const vcpu = createVcpu(vm, 0);
    try {
      // The guest's XCR0 may only enable what its CPUID offers.
      setCpuid2(vcpu, getSupportedCpuid(kvm));
      fn(vcpu, vm);
    } finally {
      closeFd(vcpu);
    }
  } finally {
    closeFd(vm);
    closeFd(kvm);
  }
}

Deno.test("KVM_GET/SET_XSAVE and KVM_GET/SET_XCRS: reset state, a round trip, a refused XCR0", () => {
  withVcpu((vcpu, vm) => {
    if (!checkExtension(vm, KVM_CAP.XSAVE) || !checkExtension(vm, KVM_CAP.XCRS)) return;
    const x = getXsave(vcpu);
    const dv = new DataView(x.buffer);
    // After reset: FCW 0x37F, MXCSR 0x1F80 (SDM Vol. 1, 8.1.5 and 10.2.3).
    assert.equal(dv.getUint16(0, true), 0x37f);
    assert.equal(dv.getUint32(24, true), 0x1f80);
    x.fill(0xa5, 160, 176); // XMM0
    x[512] |= 2; // XSTATE_BV.SSE
    setXsave(vcpu, x);
    assert.deepEqual([...getXsave(vcpu).subarray(160, 176)], Array(16).fill(0xa5));
    const xcr0 = getXcrs(vcpu).find((r) => r.xcr === 0);
    assert.ok(xcr0 && (xcr0.value & 1n) === 1n, "XCR0 has x87");
    setXcrs(vcpu, [{ xcr: 0, value: 3n }]);
    assert.equal(getXcrs(vcpu).find((r) => r.xcr === 0)?.value, 3n);
    // XCR0 without x87 is invalid (SDM Vol. 1, 13.3): XSETBV would #GP, KVM says EINVAL.
    assert.throws(() => setXcrs(vcpu, [{ xcr: 0, value: 2n }]), KvmError);
  });
});

Deno.test("KVM_GET/SET_FPU, KVM_GET/SET_VCPU_EVENTS, KVM_GET/SET_MSRS, KVM_GET_DEBUGREGS, raw regs", () => {
  withVcpu((vcpu) => {
    const fpu = getFpu(vcpu);
    assert.equal(new DataView(fpu.buffer).getUint16(KVM_FPU_STRUCT.o.fcw, true), 0x37f);
    // XMM1 goes in and out (KVM_SET_FPU leaves MXCSR alone: kvm_arch_vcpu_ioctl_set_fpu).
    fpu.fill(0x3c, KVM_FPU_STRUCT.o.xmm + 16, KVM_FPU_STRUCT.o.xmm + 32);
    setFpu(vcpu, fpu);
    const xmm1 = getFpu(vcpu).subarray(KVM_FPU_STRUCT.o.xmm + 16, KVM_FPU_STRUCT.o.xmm + 32);
    assert.deepEqual([...xmm1], Array(16).fill(0x3c));

    const ev = getVcpuEvents(vcpu);
    const E = KVM_VCPU_EVENTS_STRUCT.o;
    assert.equal(ev[E.exceptionInjected], 0);
    ev[E.exceptionInjected] = 1;
    ev[E.exceptionNr] = 13;
    ev[E.exceptionHasErrorCode] = 1;
    new DataView(ev.buffer).setUint32(E.exceptionErrorCode, 0x18, true);
    setVcpuEvents(vcpu, ev);
    const back = getVcpuEvents(vcpu);
    assert.equal(back[E.exceptionInjected], 1);
    assert.equal(back[E.exceptionNr], 13);
    assert.equal(new DataView(back.buffer).getUint32(E.exceptionErrorCode, true), 0x18);

    // IA32_APIC_BASE (0x1B): the BSP's, enabled, at 0xFEE00000; an unknown MSR reads as nothing.
    const [apicBase] = getMsrs(vcpu, [0x1b]);
    assert.equal(apicBase & 0xfffff000n, 0xfee00000n);
    assert.deepEqual(getMsrs(vcpu, [0x4b564dff]), []);
    assert.equal(setMsrs(vcpu, [{ index: 0xc0000102, value: 0x1234000n }]), 1); // KERNEL_GS_BASE
    assert.deepEqual(getMsrs(vcpu, [0xc0000102]), [0x1234000n]);
    assert.equal(setMsrs(vcpu, [{ index: 0x4b564dff, value: 1n }]), 0);

    // DR7 after reset is 0x400, DR6 0xFFFF0FF0 (SDM Vol. 3B, 18.2).
    const dr = getDebugregs(vcpu);
    assert.equal(dr.dr7, 0x400n);
    assert.equal(dr.dr6 & 0xffffffffn, 0xffff0ff0n);

    const regs = new Uint8Array(KVM_REGS_STRUCT.size);
    getRegsRaw(vcpu, regs);
    const r = new DataView(regs.buffer);
    assert.equal(r.getBigUint64(KVM_REGS_STRUCT.o.rip, true), 0xfff0n);
    r.setBigUint64(KVM_REGS_STRUCT.o.rbx, 0x5555n, true);
    setRegsRaw(vcpu, regs);
    getRegsRaw(vcpu, regs);
    assert.equal(r.getBigUint64(KVM_REGS_STRUCT.o.rbx, true), 0x5555n);
  });
});
