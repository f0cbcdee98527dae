import assert from "node:assert/strict";
import { gsiRoutes } from "../irq.ts";
import { MSI_GSI_BASE, MsiRouteTable } from "./msi_routes.ts";
import { libc } from "../../cpu/libc.ts";

// Opened before the tests: a library loaded inside a test counts as a leak.
libc();

Deno.test("msi routes: the table is the fixed routes plus one MSI route per set slot, shared by buffer", () => {
  const t = new MsiRouteTable(4);
  assert.deepEqual(t.table(), gsiRoutes());
  // Slots are set through set(), which also calls KVM; here the buffer is filled the same way.
  const other = new MsiRouteTable(t.buffer);
  assert.equal(other.slots, 4);
  assert.throws(() => t.set(-1, 4, 0xfee00000, 0x41), RangeError);
  assert.ok(!t.routes(1, 0xfee00000, 0x41));
  // A bad VM fd makes set() throw after the slot is written: the table still shows it.
  assert.throws(() => t.set(-1, 1, 0x1_fee0_1000, 0x4041), /KVM_SET_GSI_ROUTING/);
  assert.ok(other.routes(1, 0x1_fee0_1000, 0x4041));
  const msi = other.table().filter((r) => r.kind === "msi");
  assert.deepEqual(msi, [{
    gsi: MSI_GSI_BASE + 1,
    kind: "msi",
    address: 0x1_fee0_1000,
    data: 0x4041,
  }]);
  // No fixed GSI collides with an MSI slot's.
  assert.ok(gsiRoutes().every((r) => r.gsi < MSI_GSI_BASE));
  other.clear();
  assert.deepEqual(t.table(), gsiRoutes());
});
