import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { csvCell, formatDuration, formatNumber, parseDelimited, searchKey } from "./format";

describe("formatNumber", () => {
  it("keeps integers and short decimals as written", () => {
    expect(formatNumber(42)).toBe("42");
    expect(formatNumber(0.75)).toBe("0.75");
    expect(formatNumber("0.5")).toBe("0.5");
  });
  it("rounds long decimals to six significant digits", () => {
    expect(formatNumber(0.123456789)).toBe("0.123457");
  });
  it("uses exponents for tiny and huge values", () => {
    expect(formatNumber(1.5e-7)).toBe("1.5000e-7");
    expect(formatNumber(3.2e15)).toBe("3.2000e+15");
  });
  it("passes through what the server sends for non-finite values", () => {
    expect(formatNumber("NaN")).toBe("NaN");
    expect(formatNumber("Infinity")).toBe("Infinity");
    expect(formatNumber(undefined)).toBe("");
  });
});

describe("formatDuration", () => {
  it("reads like a human would say it", () => {
    expect(formatDuration(0, 250)).toBe("250 ms");
    expect(formatDuration(0, 16_100)).toBe("16.1 s");
    expect(formatDuration(0, 125_000)).toBe("2 min 5 s");
    expect(formatDuration(0, 2 * 3600_000 + 60_000)).toBe("2 h 1 min");
  });
  it("shows a dash for runs without an end or with clocks out of order", () => {
    expect(formatDuration(1000, undefined)).toBe("—");
    expect(formatDuration(2000, 1000)).toBe("—");
  });
});

describe("searchKey", () => {
  it("leaves plain identifiers bare and back-quotes the rest", () => {
    expect(searchKey("metrics", "rmse")).toBe("metrics.rmse");
    expect(searchKey("tags", "mlflow.runName")).toBe("tags.mlflow.runName");
    expect(searchKey("metrics", "system/cpu_utilization_percentage")).toBe("metrics.`system/cpu_utilization_percentage`");
    expect(searchKey("params", "learning rate")).toBe("params.`learning rate`");
  });
});

describe("CSV", () => {
  it("parses quoted cells with commas, quotes and newlines", () => {
    expect(parseDelimited('a,b\n"x, y","say ""hi""\nthere"\n', ",")).toEqual([
      ["a", "b"],
      ["x, y", 'say "hi"\nthere'],
    ]);
  });
  it("reads tab-separated text and CRLF line ends", () => {
    expect(parseDelimited("a\tb\r\n1\t2\r\n", "\t")).toEqual([
      ["a", "b"],
      ["1", "2"],
    ]);
  });
  it("stops at the row limit", () => {
    expect(parseDelimited("1\n2\n3\n4\n", ",", 2)).toEqual([["1"], ["2"]]);
  });
  it("gives back every cell the export wrote, whatever it contains", () => {
    const cell = fc.string({ unit: fc.constantFrom("a", "Z", "0", " ", ",", '"', "\n", "\r", "é", "\t") });
    fc.assert(
      fc.property(fc.array(fc.array(cell, { minLength: 2, maxLength: 4 }), { minLength: 1, maxLength: 5 }), (table) => {
        // A row of one empty cell is an empty line, which no table export writes.
        const text = table.map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
        expect(parseDelimited(text, ",", 1000)).toEqual(table);
      }),
    );
  });
});
