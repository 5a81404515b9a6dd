import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { smooth } from "./charts";

describe("smoothing", () => {
  it("is the identity at weight 0", () => {
    expect(smooth([1, 5, null, 2], 0)).toEqual([1, 5, null, 2]);
  });
  it("keeps a constant series constant from its first point on (debiased)", () => {
    fc.assert(
      fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.double({ min: 0, max: 0.99, noNaN: true }), fc.integer({ min: 1, max: 50 }), (v, w, n) => {
        for (const s of smooth(Array(n).fill(v), w)) expect(s).toBeCloseTo(v, 6);
      }),
    );
  });
  it("stays within the range of the values so far", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 40 }), fc.double({ min: 0, max: 0.99, noNaN: true }), (values, w) => {
        const out = smooth(values, w);
        out.forEach((s, i) => {
          const seen = values.slice(0, i + 1);
          expect(s as number).toBeGreaterThanOrEqual(Math.min(...seen) - 1e-9);
          expect(s as number).toBeLessThanOrEqual(Math.max(...seen) + 1e-9);
        });
      }),
    );
  });
  it("leaves gaps as gaps", () => {
    expect(smooth([1, null, 3], 0.5)[1]).toBeNull();
  });
});
