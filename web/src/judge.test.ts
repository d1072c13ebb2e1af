import { describe, expect, it } from "vitest";
import { scoreText, takenForReal, verdictText } from "./judge";

const score = { answers: 1, correct: 1, models: ["m"], sources: [] };

describe("judge", () => {
  it("counts the score in words and rounds the share", () => {
    expect(scoreText(0, 0)).toBe("no answers yet");
    expect(scoreText(2, 3)).toBe("2 of 3 right (67%)");
  });

  it("says how often a source was taken for real", () => {
    expect(takenForReal({ source: "real", excerpts: 4, answers: 0, judged_real: 0 })).toBe("no answers");
    expect(takenForReal({ source: "m", excerpts: 4, answers: 1, judged_real: 1 })).toBe("100% of 1 answer");
    expect(takenForReal({ source: "m", excerpts: 4, answers: 8, judged_real: 5 })).toBe("63% of 8 answers");
  });

  it("tells the truth after an answer", () => {
    expect(verdictText({ correct: true, real: true, model: null, score })).toBe("Right: that was a real song.");
    expect(verdictText({ correct: false, real: false, model: "base", score })).toBe(
      "Wrong: that was the model base.",
    );
  });
});
