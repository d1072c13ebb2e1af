// Sampling defaults that suit lyrics. The bounds of the controls come from the server (`fetchLimits`).
import type { SamplingSettings } from "./api";

export const LYRIC_DEFAULTS: SamplingSettings = {
  max_new_tokens: 400,
  temperature: 0.9, // lively but coherent; 0.7 is safer, above 1.2 words start to fall apart
  top_p: 0.95, // cuts the long tail of unlikely tokens that produces gibberish
  top_k: null,
  min_p: null,
  repetition_penalty: 1.0, // off: rhyme and refrain repeat on purpose
  frequency_penalty: 0,
  presence_penalty: 0,
  stop: [],
  seed: null,
};

export const STOP_CHOICES: { label: string; stop: string[] }[] = [
  { label: "Never (use the whole length)", stop: [] },
  { label: "At the end of the verse (blank line)", stop: ["\n\n"] },
  { label: "At the end of the line", stop: ["\n"] },
];
