import { describe, expect, it } from "vitest";
import { describeError, errorFrom } from "./api";

describe("server errors", () => {
  it("reads OpenAI's error object first, then FastAPI's detail", () => {
    expect(describeError({ error: { message: "temperature: too high" }, detail: [] })).toBe("temperature: too high");
    expect(describeError({ detail: "Not Found" })).toBe("Not Found");
    expect(describeError({ detail: [{ msg: "x" }] })).toBeNull();
    expect(describeError("oops")).toBeNull();
  });

  it("tells when to retry a refused request", async () => {
    const response = new Response(JSON.stringify({ error: { message: "the server is busy" } }), {
      status: 429, headers: { "Retry-After": "7" },
    });
    const error = await errorFrom(response);
    expect(error.status).toBe(429);
    expect(error.message).toBe("the server is busy. Try again in 7 s.");
  });

  it("falls back to the status line when the body is not JSON", async () => {
    const error = await errorFrom(new Response("<html>", { status: 502, statusText: "Bad Gateway" }));
    expect(error.message).toBe("502 Bad Gateway");
  });
});
