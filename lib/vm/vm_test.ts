import assert from "node:assert/strict";
import { formatFallbackSummary, formatProgress } from "./vm.ts";

Deno.test("formatProgress: rates over the interval between two samples, totals as they are", () => {
  const line = formatProgress(
    { ms: 10_000, exits: 1_000, fallbacks: 50 },
    { ms: 15_000, exits: 6_000, fallbacks: 550 },
  );
  assert.equal(line, "up 15s: 1000 exits/s, fallbacks 550 (+100/s)");
});

Deno.test("formatProgress: a reset in place (exit counters start again) never shows a negative rate", () => {
  const line = formatProgress(
    { ms: 0, exits: 9_000, fallbacks: 3 },
    { ms: 2_000, exits: 100, fallbacks: 3 },
  );
  assert.equal(line, "up 2s: 0 exits/s, fallbacks 3 (+0/s)");
});

Deno.test("formatFallbackSummary: most frequent first; nothing when there were none", () => {
  assert.equal(formatFallbackSummary({}), undefined);
  assert.equal(
    formatFallbackSummary({ int3: { count: 2, ms: 0.5 }, clac: { count: 1480, ms: 31.2 } }),
    "fallbacks: clac 1480 (31 ms), int3 2 (0.50 ms)",
  );
});
