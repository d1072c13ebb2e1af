// The session's generations, kept in sessionStorage so that a reload of the page does not lose them.
import type { GenerateRequest } from "./api";

export interface HistoryEntry {
  id: string;
  created: number; // ms since the epoch
  model: string;
  request: GenerateRequest;
  text: string;
  finish_reason: string; // "stop", "length", "eot", "time_limit", "cancelled" (stopped by the user) or "error"
  tokens: number | null; // null when stopped before the server reported a count
  seed: number | null;
}

const KEY = "rapgpt.history";
export const HISTORY_LIMIT = 50;

export function loadHistory(storage: Storage | undefined = globalThis.sessionStorage): HistoryEntry[] {
  try {
    const parsed = JSON.parse(storage?.getItem(KEY) ?? "[]");
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

export function saveHistory(entries: HistoryEntry[], storage: Storage | undefined = globalThis.sessionStorage) {
  try {
    storage?.setItem(KEY, JSON.stringify(entries.slice(0, HISTORY_LIMIT)));
  } catch {
    // storage full or disabled: the history lives on in memory for this page
  }
}

/** Newest first, at most HISTORY_LIMIT entries. */
export function addEntry(entries: HistoryEntry[], entry: HistoryEntry): HistoryEntry[] {
  return [entry, ...entries.filter((e) => e.id !== entry.id)].slice(0, HISTORY_LIMIT);
}

/** A file name for downloading lyrics: the first words of the prompt (or the text), safe on every system. */
export function fileName(prompt: string, text: string, created: number): string {
  const words = (prompt.trim() || text.trim()).split(/\s+/).slice(0, 6).join("-");
  const slug = words.toLowerCase().replace(/[^a-z0-9-]+/g, "").replace(/-+/g, "-").replace(/^-|-$/g, "");
  const stamp = new Date(created).toISOString().slice(0, 19).replace(/[:T]/g, "-");
  return `${slug || "lyrics"}-${stamp}.txt`;
}

/** One line that identifies an entry in the list. */
export function title(entry: HistoryEntry): string {
  const line = (entry.request.prompt + entry.text).split("\n").find((l) => l.trim()) ?? "";
  return line.trim().slice(0, 60) || "(empty)";
}
