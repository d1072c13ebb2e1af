// Writing to a rhyme scheme (the settings the studio sends) and the rhymes of a text (what it colours).
import { errorFrom } from "./api";

export const SCHEMES = ["free", "AABB", "ABAB", "ABCB", "AAAA"] as const;
export type Scheme = (typeof SCHEMES)[number];

export interface WritingSettings {
  scheme: Scheme;
  candidates: number | null; // candidate lines per line; null: the server's default (8 with a scheme)
  lines: number | null; // lines to write; null: the server's default (16 with a scheme)
}

export const WRITING_DEFAULTS: WritingSettings = { scheme: "free", candidates: null, lines: null };
export const RHYME_COLOURS = 8; // rhyme groups cycle through this many colours (.rhyme-0 … .rhyme-7)

/** A line end that rhymes with one near it: code points [start, end) of the text, and its rhyme group. */
export interface RhymeMark {
  start: number;
  end: number;
  group: number;
}

export interface Segment {
  text: string;
  group: number | null; // the rhyme group of a marked word, null for the text between
}

export async function fetchRhymes(text: string, apiKey: string, signal?: AbortSignal): Promise<RhymeMark[]> {
  const h: Record<string, string> = { "Content-Type": "application/json" };
  if (apiKey) h.Authorization = `Bearer ${apiKey}`;
  const response = await fetch("api/rhymes", { method: "POST", headers: h, body: JSON.stringify({ text }), signal });
  if (!response.ok) throw await errorFrom(response);
  return ((await response.json()) as { marks: RhymeMark[] }).marks;
}

/** Cut `text` at the marks (offsets in code points, as the server counts them) into plain and rhyming pieces. */
export function segments(text: string, marks: RhymeMark[]): Segment[] {
  const points = Array.from(text);
  const out: Segment[] = [];
  let at = 0;
  for (const m of [...marks].sort((a, b) => a.start - b.start)) {
    if (m.start < at || m.end > points.length) continue; // stale marks of an older text
    if (m.start > at) out.push({ text: points.slice(at, m.start).join(""), group: null });
    out.push({ text: points.slice(m.start, m.end).join(""), group: m.group });
    at = m.end;
  }
  if (at < points.length) out.push({ text: points.slice(at).join(""), group: null });
  return out;
}

/** Split segments at a code-point offset: those before it and those after (a segment across it is cut). */
export function splitAt(parts: Segment[], offset: number): [Segment[], Segment[]] {
  const before: Segment[] = [];
  const after: Segment[] = [];
  let at = 0;
  for (const s of parts) {
    const points = Array.from(s.text);
    const cut = Math.max(0, Math.min(points.length, offset - at));
    if (cut > 0) before.push({ text: points.slice(0, cut).join(""), group: s.group });
    if (cut < points.length) after.push({ text: points.slice(cut).join(""), group: s.group });
    at += points.length;
  }
  return [before, after];
}
