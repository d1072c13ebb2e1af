import { describe, expect, it } from "vitest";
import { SSEParser } from "./sse";

describe("SSEParser", () => {
  it("parses named events with JSON data", () => {
    const p = new SSEParser();
    expect(p.feed('event: text\ndata: {"text":"yo"}\n\n')).toEqual([{ event: "text", data: '{"text":"yo"}' }]);
  });

  it("joins messages split across chunks at any byte", () => {
    const stream = 'event: text\ndata: {"text":"a"}\n\nevent: done\ndata: {"n":1}\n\n';
    for (let cut = 1; cut < stream.length; cut++) {
      const p = new SSEParser();
      const got = [...p.feed(stream.slice(0, cut)), ...p.feed(stream.slice(cut))];
      expect(got).toEqual([
        { event: "text", data: '{"text":"a"}' },
        { event: "done", data: '{"n":1}' },
      ]);
    }
  });

  it("handles CRLF line ends split between chunks", () => {
    const p = new SSEParser();
    expect(p.feed("data: x\r")).toEqual([]);
    expect(p.feed("\n\r\n")).toEqual([{ event: "message", data: "x" }]);
  });

  it("ignores comments and joins multi-line data", () => {
    const p = new SSEParser();
    expect(p.feed(": keep-alive\n\ndata: one\ndata: two\n\n")).toEqual([{ event: "message", data: "one\ntwo" }]);
  });

  it("keeps an unfinished message until its blank line arrives", () => {
    const p = new SSEParser();
    expect(p.feed("data: [DONE]\n")).toEqual([]);
    expect(p.feed("\n")).toEqual([{ event: "message", data: "[DONE]" }]);
  });
});
