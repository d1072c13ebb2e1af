// The rapgpt server's API as the front end uses it: its limits, the model list and streamed generation.
import { SSEParser } from "./sse";

export interface ModelInfo {
  id: string;
  parent: string | null; // the base model an adapter fine-tunes; null for the base model itself
  context_length: number;
  tokenizer: string;
}

export interface SamplingSettings {
  max_new_tokens: number;
  temperature: number;
  top_p: number | null;
  top_k: number | null;
  min_p: number | null;
  repetition_penalty: number;
  frequency_penalty: number;
  presence_penalty: number;
  stop: string[];
  seed: number | null;
}

export interface GenerateRequest extends SamplingSettings {
  prompt: string;
  adapter: string | null;
}

export interface GenerateResult {
  id: string;
  model: string;
  adapter: string | null;
  text: string;
  finish_reason: string;
  seed: number;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  timings: { queued: number; first_token: number | null; total: number; tokens_per_second: number };
}

/** An answer the server refused, with its own explanation (the body's error.message or detail). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export function headers(apiKey: string): Record<string, string> {
  const h: Record<string, string> = { "Content-Type": "application/json" };
  if (apiKey) h.Authorization = `Bearer ${apiKey}`;
  return h;
}

/** The server's explanation of a failed request, made readable. */
export async function errorFrom(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`;
  try {
    message = describeError(await response.json()) ?? message;
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 429 || response.status === 503) {
    const wait = response.headers.get("Retry-After");
    if (wait) message += `${/[.!?]$/.test(message) ? "" : "."} Try again in ${wait} s.`;
  }
  return new ApiError(message, response.status);
}

export function describeError(body: unknown): string | null {
  if (!body || typeof body !== "object") return null;
  const b = body as { error?: { message?: string }; detail?: unknown };
  if (b.error?.message) return b.error.message;
  if (typeof b.detail === "string") return b.detail;
  return null;
}

/** The bounds of a request's fields as the server enforces them; the controls follow them, never a copy. */
export interface Limits {
  prompt_chars: number;
  max_new_tokens: number;
  stop_strings: number;
  stop_chars: number;
  top_k: number;
  max_temperature: number;
  min_top_p: number;
  min_repetition_penalty: number;
  max_repetition_penalty: number;
  max_penalty: number;
}

export async function fetchLimits(): Promise<Limits> {
  const response = await fetch("api/limits");
  if (!response.ok) throw await errorFrom(response);
  return (await response.json()) as Limits;
}

export async function listModels(apiKey: string): Promise<ModelInfo[]> {
  const response = await fetch("v1/models", { headers: headers(apiKey) });
  if (!response.ok) throw await errorFrom(response);
  const body = (await response.json()) as { data: ModelInfo[] };
  return body.data;
}

/** Generate with streaming: `onText` receives each piece as it is produced; resolves with the final result. */
export async function streamGenerate(
  request: GenerateRequest,
  apiKey: string,
  signal: AbortSignal,
  onText: (piece: string) => void,
): Promise<GenerateResult> {
  const response = await fetch("api/generate", {
    method: "POST",
    headers: headers(apiKey),
    body: JSON.stringify({ ...request, stream: true }),
    signal,
  });
  if (!response.ok || !response.body) throw await errorFrom(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SSEParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const message of parser.feed(value)) {
      const data = JSON.parse(message.data);
      if (message.event === "text") onText(data.text);
      else if (message.event === "done") return data as GenerateResult;
      else if (message.event === "error") throw new ApiError(describeError(data) ?? "generation failed", 500);
    }
  }
  throw new ApiError("the server closed the stream before the generation finished", 502);
}
