// The rhyme-scheme controls, and lyrics shown with the words that rhyme in a shared colour.
import { useEffect, useState } from "react";
import type { ControlsProps } from "./Controls";
import type { RhymeMark, Scheme, Segment, WritingSettings } from "./writing";
import { RHYME_COLOURS, SCHEMES, fetchRhymes, segments, splitAt } from "./writing";

export function WritingControls({ value, limits, onChange, disabled }: ControlsProps<WritingSettings>) {
  const number = (text: string) => (text === "" ? null : Math.max(1, Math.round(Number(text))));
  return (
    <fieldset className="controls writing" disabled={disabled}>
      <label className="field">
        <span className="field-label">Rhyme scheme</span>
        <select value={value.scheme} aria-label="Rhyme scheme"
          onChange={(e) => onChange({ ...value, scheme: e.target.value as Scheme })}>
          {SCHEMES.map((s) => <option key={s} value={s}>{s === "free" ? "Free (no scheme)" : s}</option>)}
        </select>
      </label>
      <label className="field">
        <span className="field-label">Candidates per line</span>
        <input type="number" min={1} max={limits?.candidates} step={1} aria-label="Candidates per line"
          placeholder={value.scheme === "free" ? "1" : "8"} value={value.candidates ?? ""}
          onChange={(e) => onChange({ ...value, candidates: number(e.target.value) })} />
      </label>
      <label className="field">
        <span className="field-label">Lines</span>
        <input type="number" min={1} max={limits?.lines} step={1} aria-label="Lines"
          placeholder={value.scheme === "free" ? "by length" : "16"} value={value.lines ?? ""}
          onChange={(e) => onChange({ ...value, lines: number(e.target.value) })} />
      </label>
    </fieldset>
  );
}

/** The rhymes of `text`, asked of the server a moment after the text stops changing. */
function useRhymes(text: string, apiKey: string): RhymeMark[] {
  const [marks, setMarks] = useState<RhymeMark[]>([]);
  useEffect(() => {
    if (!text.trim()) {
      setMarks([]);
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => {
      fetchRhymes(text, apiKey, controller.signal).then(setMarks, () => setMarks([]));
    }, 250);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [text, apiKey]);
  return marks;
}

function Pieces({ parts }: { parts: Segment[] }) {
  return (
    <>
      {parts.map((p, i) =>
        p.group === null ? p.text : (
          <span key={i} className={`rhyme rhyme-${p.group % RHYME_COLOURS}`} data-rhyme={p.group}>{p.text}</span>
        ))}
    </>
  );
}

/** The prompt and the generated text, each in its own span, with rhyming line ends coloured by rhyme group. */
export function RhymedLyrics({ prompt, text, apiKey }: { prompt: string; text: string; apiKey: string }) {
  const marks = useRhymes(prompt + text, apiKey);
  const [before, after] = splitAt(segments(prompt + text, marks), Array.from(prompt).length);
  return (
    <>
      <span className="prompt-text"><Pieces parts={before} /></span>
      <span className="generated" data-testid="generated"><Pieces parts={after} /></span>
    </>
  );
}
