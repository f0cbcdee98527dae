import assert from "node:assert/strict";
import { VCPU_REQUEST, VcpuControl } from "./vm_control.ts";

Deno.test("vCPU requests: a later request replaces one not yet taken; taking leaves none", () => {
  const c = new VcpuControl();
  assert.equal(c.request, VCPU_REQUEST.none);
  c.setRequest(VCPU_REQUEST.run);
  c.setRequest(VCPU_REQUEST.pause);
  assert.equal(c.takeRequest(), VCPU_REQUEST.pause);
  assert.equal(c.request, VCPU_REQUEST.none);
  assert.equal(c.takeRequest(), VCPU_REQUEST.none);
});

Deno.test("vCPU requests: exit stays until taken, whatever is posted after it", () => {
  const c = new VcpuControl();
  c.setRequest(VCPU_REQUEST.exit);
  c.setRequest(VCPU_REQUEST.pause);
  c.setRequest(VCPU_REQUEST.run);
  assert.equal(c.request, VCPU_REQUEST.exit);
  assert.equal(c.takeRequest(), VCPU_REQUEST.exit);
});
