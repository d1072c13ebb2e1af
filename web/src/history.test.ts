import { describe, expect, it } from "vitest";
import type { HistoryEntry } from "./history";
import { addEntry, fileName, HISTORY_LIMIT, loadHistory, saveHistory, title } from "./history";
import { LYRIC_DEFAULTS } from "./settings";

function entry(id: string, prompt = "city lights", text = " never sleep\nagain"): HistoryEntry {
  return {
    id, created: Date.UTC(2024, 0, 2, 3, 4, 5), model: "m", text, finish_reason: "length", tokens: 3, seed: 1,
    request: { ...LYRIC_DEFAULTS, prompt, adapter: null },
  };
}

class MemoryStorage {
  items = new Map<string, string>();
  getItem(k: string) { return this.items.get(k) ?? null; }
  setItem(k: string, v: string) { this.items.set(k, v); }
}

describe("history", () => {
  it("keeps the newest first and no more than the limit", () => {
    let list: HistoryEntry[] = [];
    for (let i = 0; i < HISTORY_LIMIT + 5; i++) list = addEntry(list, entry(String(i)));
    expect(list).toHaveLength(HISTORY_LIMIT);
    expect(list[0].id).toBe(String(HISTORY_LIMIT + 4));
  });

  it("round-trips through storage and survives garbage in it", () => {
    const storage = new MemoryStorage() as unknown as Storage;
    saveHistory([entry("a")], storage);
    expect(loadHistory(storage).map((e) => e.id)).toEqual(["a"]);
    storage.setItem("rapgpt.history", "{not json");
    expect(loadHistory(storage)).toEqual([]);
  });

  it("names downloads after the prompt with only safe characters", () => {
    expect(fileName("Yo! City/lights: ../never sleep", "", Date.UTC(2024, 0, 2, 3, 4, 5)))
      .toBe("yo-citylights-never-sleep-2024-01-02-03-04-05.txt");
    expect(fileName("", "", 0)).toBe("lyrics-1970-01-01-00-00-00.txt");
  });

  it("titles an entry by its first non-empty line", () => {
    expect(title(entry("a", "\n\n", "first bar\nsecond"))).toBe("first bar");
  });
});
