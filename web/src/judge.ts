// The blind test's API ("Real or written by the model?") and the arithmetic of its score.
import { errorFrom, headers } from "./api";

export interface Excerpt {
  id: number;
  text: string;
}

export interface SourceTally {
  source: string; // "real", or the name of the model that wrote the excerpts
  excerpts: number;
  answers: number;
  judged_real: number;
}

export interface JudgeScore {
  answers: number;
  correct: number;
  models: string[];
  sources: SourceTally[];
}

export interface Verdict {
  correct: boolean;
  real: boolean;
  model: string | null;
  score: JudgeScore;
}

export const REAL = "real";

/** An excerpt to judge: from a real song or from `model` ("" for any model), even odds. */
export async function nextExcerpt(model: string, apiKey: string): Promise<Excerpt> {
  const query = model ? `?model=${encodeURIComponent(model)}` : "";
  const response = await fetch(`api/judge/excerpt${query}`, { headers: headers(apiKey) });
  if (!response.ok) throw await errorFrom(response);
  return (await response.json()) as Excerpt;
}

export async function sendAnswer(excerpt: number, real: boolean, apiKey: string): Promise<Verdict> {
  const response = await fetch("api/judge/answers", {
    method: "POST",
    headers: headers(apiKey),
    body: JSON.stringify({ excerpt, real }),
  });
  if (!response.ok) throw await errorFrom(response);
  return (await response.json()) as Verdict;
}

export async function fetchScore(apiKey: string): Promise<JudgeScore> {
  const response = await fetch("api/judge/score", { headers: headers(apiKey) });
  if (!response.ok) throw await errorFrom(response);
  return (await response.json()) as JudgeScore;
}

/** "7 of 10 right (70%)", or a prompt to start when nothing was answered. */
export function scoreText(correct: number, answers: number): string {
  if (answers === 0) return "no answers yet";
  return `${correct} of ${answers} right (${Math.round((100 * correct) / answers)}%)`;
}

/** How often a source's excerpts were taken for real: "62% of 13 answers", or "no answers". */
export function takenForReal(tally: SourceTally): string {
  if (tally.answers === 0) return "no answers";
  const share = Math.round((100 * tally.judged_real) / tally.answers);
  return `${share}% of ${tally.answers} answer${tally.answers === 1 ? "" : "s"}`;
}

/** What the person is told after answering. */
export function verdictText(verdict: Verdict): string {
  const truth = verdict.real ? "a real song" : `the model ${verdict.model}`;
  return `${verdict.correct ? "Right" : "Wrong"}: that was ${truth}.`;
}
