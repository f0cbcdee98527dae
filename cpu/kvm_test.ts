// Tests of the KVM wrappers that need a real /dev/kvm.
import assert from "node:assert/strict";
import { closeFd, createIrqchip, createVm, openKvm, signalMsi } from "./kvm.ts";
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
