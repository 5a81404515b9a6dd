import { describe, expect, it } from "vitest";
import { resolveLink } from "./PlatformLinks";

describe("resolveLink", () => {
  const here = { protocol: "http:", hostname: "mlox.example.com" };

  it("keeps absolute links", () => {
    expect(resolveLink("https://hub.example.com/hub/", here)).toBe("https://hub.example.com/hub/");
  });

  it("puts a port-relative link on the host the browser uses", () => {
    expect(resolveLink(":8888/hub/", here)).toBe("http://mlox.example.com:8888/hub/");
    expect(resolveLink(":8888/lab", { protocol: "https:", hostname: "10.0.0.5" })).toBe("https://10.0.0.5:8888/lab");
  });

  it("brackets IPv6 hosts", () => {
    expect(resolveLink(":8888/lab", { protocol: "http:", hostname: "[::1]" })).toBe("http://[::1]:8888/lab");
    expect(resolveLink(":8888/lab", { protocol: "http:", hostname: "::1" })).toBe("http://[::1]:8888/lab");
  });
});
