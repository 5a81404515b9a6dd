import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { groupLoggedImages, parseImageFileName } from "./images";

const uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";

describe("parseImageFileName", () => {
  it("reads the current client's names, slashes in keys spelled ~", () => {
    expect(parseImageFileName(`images/train~samples+step+3+timestamp+1700000000000+${uuid}.png`)).toEqual({
      key: "train/samples",
      step: 3,
      timestamp: 1700000000000,
      id: uuid,
      compressed: false,
    });
    expect(parseImageFileName(`images/dogs+step+0+timestamp+5+${uuid}+compressed.webp`)?.compressed).toBe(true);
  });
  it("reads older clients' % names with # for slashes", () => {
    expect(parseImageFileName(`images/a#b%step%7%timestamp%9%${uuid}.png`)).toMatchObject({ key: "a/b", step: 7, timestamp: 9 });
  });
  it("ignores other files", () => {
    expect(parseImageFileName("images/plot.png")).toBeNull();
    expect(parseImageFileName(`images/a+step+1%timestamp%2%${uuid}.png`)).toBeNull();
  });
  it("round-trips any key the client accepts", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-zA-Z0-9_\-. ][a-zA-Z0-9_\-./ ]{0,20}$/), fc.nat(), (key, step) => {
        const name = `images/${key.replace(/\//g, "~")}+step+${step}+timestamp+1+${uuid}.png`;
        expect(parseImageFileName(name)).toMatchObject({ key, step });
      }),
    );
  });
});

describe("groupLoggedImages", () => {
  it("pairs each image with its thumbnail and orders steps", () => {
    const other = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    const groups = groupLoggedImages([
      `images/dogs+step+2+timestamp+20+${uuid}.png`,
      `images/dogs+step+2+timestamp+20+${uuid}+compressed.webp`,
      `images/dogs+step+1+timestamp+10+${other}.png`,
      "images/readme.txt",
    ]);
    expect([...groups.keys()]).toEqual(["dogs"]);
    expect(groups.get("dogs")?.map((i) => [i.step, i.path, i.thumbnail])).toEqual([
      [1, `images/dogs+step+1+timestamp+10+${other}.png`, undefined],
      [2, `images/dogs+step+2+timestamp+20+${uuid}.png`, `images/dogs+step+2+timestamp+20+${uuid}+compressed.webp`],
    ]);
  });
});
