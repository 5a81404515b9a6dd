import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { href, idList, idListParam, parseHash } from "./router";

describe("hash routes", () => {
  it("read MLflow's URL shapes", () => {
    const loc = parseHash("#/experiments/1/runs/abc?searchFilter=metrics.rmse%20%3C%201");
    expect(loc.path).toEqual(["experiments", "1", "runs", "abc"]);
    expect(loc.query.get("searchFilter")).toBe("metrics.rmse < 1");
    expect(parseHash("").path).toEqual([]);
    expect(parseHash("#/").path).toEqual([]);
  });
  it("round-trip any path segment, slashes and all", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1 }), { maxLength: 5 }), (segments) => {
        expect(parseHash(href(segments)).path).toEqual(segments);
      }),
    );
  });
  it("round-trip query values", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (value) => {
        expect(parseHash(href(["x"], { q: value })).query.get("q")).toBe(value);
      }),
    );
  });
  it("drop empty query values", () => {
    expect(href(["models"], { search: "" })).toBe("#/models");
  });
});

describe("id lists", () => {
  it("read MLflow's JSON arrays and plain comma lists", () => {
    expect(idList('["a","b"]')).toEqual(["a", "b"]);
    expect(idList("a,b")).toEqual(["a", "b"]);
    expect(idList(null)).toEqual([]);
    expect(idList("5")).toEqual(["5"]);
  });
  it("round-trip", () => {
    fc.assert(
      fc.property(fc.array(fc.string()), (ids) => {
        expect(idList(idListParam(ids))).toEqual(ids);
      }),
    );
  });
});
