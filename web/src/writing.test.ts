import { describe, expect, it } from "vitest";
import { segments, splitAt } from "./writing";

describe("segments", () => {
  it("cuts the text at the marks, counting code points as the server does", () => {
    const text = "🔥 night\nlight";
    const parts = segments(text, [{ start: 2, end: 7, group: 0 }, { start: 8, end: 13, group: 0 }]);
    expect(parts).toEqual([
      { text: "🔥 ", group: null }, { text: "night", group: 0 }, { text: "\n", group: null },
      { text: "light", group: 0 },
    ]);
  });

  it("ignores marks beyond the text (an answer about an older text)", () => {
    expect(segments("day", [{ start: 5, end: 9, group: 1 }])).toEqual([{ text: "day", group: null }]);
  });
});

describe("splitAt", () => {
  it("splits between the prompt and the generated text, cutting a piece across the boundary", () => {
    const parts = [{ text: "ab", group: null }, { text: "cd", group: 2 }];
    expect(splitAt(parts, 3)).toEqual([
      [{ text: "ab", group: null }, { text: "c", group: 2 }],
      [{ text: "d", group: 2 }],
    ]);
  });
});
