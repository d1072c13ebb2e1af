// The lyrics studio: write a prompt, choose a voice and settings, watch the lyrics stream in.
import { useCallback, useEffect, useRef, useState } from "react";
import type { GenerateResult, Limits, ModelInfo, SamplingSettings } from "./api";
import { ApiError, fetchLimits, listModels, streamGenerate } from "./api";
import { Controls } from "./Controls";
import { History } from "./History";
import type { HistoryEntry } from "./history";
import { addEntry, fileName, loadHistory, saveHistory } from "./history";
import { JudgePage } from "./Judge";
import { usePage } from "./nav";
import { LYRIC_DEFAULTS } from "./settings";

type Health = "loading" | "ready" | "down";

interface Sheet {
  id: string | null; // the history entry shown, if any
  prompt: string;
  text: string;
  model: string;
  created: number;
  result: GenerateResult | null;
}

const EMPTY_SHEET: Sheet = { id: null, prompt: "", text: "", model: "", created: 0, result: null };
const API_KEY = "rapgpt.apiKey";

function useHealth(): Health {
  const [health, setHealth] = useState<Health>("loading");
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout>;
    const poll = async () => {
      let next: Health = "down";
      try {
        const response = await fetch("health");
        next = response.ok ? "ready" : response.status === 503 ? "loading" : "down";
      } catch {
        next = "down";
      }
      if (stopped) return;
      setHealth(next);
      timer = setTimeout(poll, next === "ready" ? 15000 : 1500);
    };
    poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);
  return health;
}

function modelLabel(m: ModelInfo): string {
  return m.parent ? `${m.id} · fine-tuned` : `${m.id} · base model`;
}

async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  // Plain http on a LAN address has no clipboard API: fall back to a hidden text area.
  const area = document.createElement("textarea");
  area.value = text;
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

export function App() {
  const health = useHealth();
  const page = usePage();
  const [apiKey, setApiKey] = useState(() => localStorage.getItem(API_KEY) ?? "");
  const [askKey, setAskKey] = useState(false);
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [limits, setLimits] = useState<Limits | null>(null);
  const [model, setModel] = useState("");
  const [prompt, setPrompt] = useState("");
  const [settings, setSettings] = useState<SamplingSettings>(LYRIC_DEFAULTS);
  const [sheet, setSheet] = useState<Sheet>(EMPTY_SHEET);
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [history, setHistory] = useState<HistoryEntry[]>(() => loadHistory());
  const abort = useRef<AbortController | null>(null);
  const sheetRef = useRef<HTMLElement | null>(null);

  useEffect(() => saveHistory(history), [history]);

  const fail = useCallback((e: unknown) => {
    if (e instanceof ApiError && e.status === 401) setAskKey(true);
    setError(e instanceof Error ? e.message : String(e));
  }, []);

  useEffect(() => {
    if (health === "ready" && !limits) fetchLimits().then(setLimits).catch(fail);
  }, [health, limits, fail]);

  useEffect(() => {
    if (health !== "ready") return;
    listModels(apiKey)
      .then((list) => {
        setModels(list);
        setModel((current) => (list.some((m) => m.id === current) ? current : (list[0]?.id ?? "")));
        setError(null);
      })
      .catch(fail);
  }, [health, apiKey, fail]);

  const flash = (message: string) => {
    setNotice(message);
    setTimeout(() => setNotice(null), 1800);
  };

  const generate = async () => {
    const chosen = models.find((m) => m.id === model);
    if (!chosen || streaming) return;
    const request = { ...settings, prompt, adapter: chosen.parent ? chosen.id : null };
    const created = Date.now();
    const controller = new AbortController();
    abort.current = controller;
    setError(null);
    setStreaming(true);
    setSheet({ id: null, prompt, text: "", model: chosen.id, created, result: null });
    if (window.matchMedia("(max-width: 720px)").matches) {
      sheetRef.current?.scrollIntoView({ behavior: "smooth", block: "start" }); // on a phone the lyrics are below
    }
    let text = "";
    let finish = "error";
    let result: GenerateResult | null = null;
    try {
      result = await streamGenerate(request, apiKey, controller.signal, (piece) => {
        text += piece;
        setSheet((s) => ({ ...s, text }));
      });
      finish = result.finish_reason;
      text = result.text;
    } catch (e) {
      if (controller.signal.aborted) finish = "cancelled";
      else fail(e);
    } finally {
      setStreaming(false);
      abort.current = null;
    }
    const id = `${created}-${Math.random().toString(36).slice(2, 8)}`;
    setSheet({ id, prompt, text, model: chosen.id, created, result });
    if (text || finish !== "error") {
      const entry: HistoryEntry = {
        id, created, model: chosen.id, request, text, finish_reason: finish,
        tokens: result?.usage.completion_tokens ?? null, seed: result?.seed ?? request.seed,
      };
      setHistory((h) => addEntry(h, entry));
    }
  };

  const stop = () => abort.current?.abort();

  const show = (entry: HistoryEntry) => {
    if (streaming) return;
    setSheet({ id: entry.id, prompt: entry.request.prompt, text: entry.text, model: entry.model,
               created: entry.created, result: null });
    setPrompt(entry.request.prompt);
    const { prompt: _p, adapter: _a, ...sampling } = entry.request;
    setSettings(sampling);
    if (models.some((m) => m.id === entry.model)) setModel(entry.model);
    setError(null);
  };

  const lyrics = sheet.prompt + sheet.text;

  const download = () => {
    const url = URL.createObjectURL(new Blob([lyrics], { type: "text/plain;charset=utf-8" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = fileName(sheet.prompt, sheet.text, sheet.created || Date.now());
    a.click();
    URL.revokeObjectURL(url);
  };

  const saveKey = (key: string) => {
    setApiKey(key);
    localStorage.setItem(API_KEY, key);
    setAskKey(false);
  };

  const result = sheet.result;
  const ready = health === "ready" && models.length > 0;
  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden="true">▍▍</span>
          <span className="brand-name">rapgpt</span>
          <span className="brand-tag">lyrics studio</span>
        </div>
        <div className="topbar-right">
          <a className="nav" href="#" aria-current={page === "studio" ? "page" : undefined}>Studio</a>
          <a className="nav" href="#judge" aria-current={page === "judge" ? "page" : undefined}>Real or model?</a>
          <span className={`status status-${health}`} role="status" aria-label="Server status">
            <span className="dot" aria-hidden="true" />
            {health === "ready" ? "Ready" : health === "loading" ? "Loading model…" : "Server unreachable"}
          </span>
          <button className="link" onClick={() => setAskKey((v) => !v)}>API key</button>
        </div>
      </header>

      {askKey && <KeyForm initial={apiKey} onSave={saveKey} />}

      {page === "judge" ? <JudgePage apiKey={apiKey} ready={health === "ready"} onUnauthorized={() => setAskKey(true)} /> : (
      <main className="layout">
        <section className="panel compose" aria-label="Compose">
          <label className="field">
            <span className="field-label">Voice</span>
            <select value={model} onChange={(e) => setModel(e.target.value)} disabled={streaming || !ready}
              aria-label="Voice">
              {models.length === 0 && <option value="">{health === "ready" ? "No models" : "Loading…"}</option>}
              {models.map((m) => <option key={m.id} value={m.id}>{modelLabel(m)}</option>)}
            </select>
          </label>
          <label className="field">
            <span className="field-label">
              Prompt <span className="hint">{prompt.length > 0 && limits && `${prompt.length} / ${limits.prompt_chars}`}</span>
            </span>
            <textarea value={prompt} maxLength={limits?.prompt_chars} rows={5} aria-label="Prompt"
              placeholder={"Start a verse, a hook or a title…\n(empty: a song from scratch)"}
              onChange={(e) => setPrompt(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) generate();
              }} />
          </label>
          <Controls value={settings} limits={limits} onChange={setSettings} disabled={streaming} />
          <div className="actions">
            <button className="primary" onClick={generate} disabled={!ready || streaming}>
              {streaming ? "Writing…" : "Generate"}
            </button>
            <button className="secondary" onClick={stop} disabled={!streaming}>Stop</button>
            <button className="link" onClick={() => setSettings(LYRIC_DEFAULTS)} disabled={streaming}>
              Reset settings
            </button>
          </div>
        </section>

        <section className="panel sheet" aria-label="Lyrics" ref={sheetRef}>
          <div className="panel-head">
            <h2>Lyrics</h2>
            <div className="sheet-actions">
              <button className="secondary small" disabled={!lyrics}
                onClick={() => copyText(lyrics).then(() => flash("Copied"), () => flash("Copy failed"))}>
                Copy
              </button>
              <button className="secondary small" disabled={!lyrics} onClick={download}>Download</button>
            </div>
          </div>
          {error && <div className="error" role="alert">{error}</div>}
          <pre className={streaming ? "lyrics streaming" : "lyrics"} data-testid="lyrics" aria-live="polite">
            {lyrics ? (
              <>
                <span className="prompt-text">{sheet.prompt}</span>
                <span className="generated" data-testid="generated">{sheet.text}</span>
              </>
            ) : (
              <span className="placeholder">The lyrics appear here as they are written.</span>
            )}
            {streaming && <span className="caret" aria-hidden="true" />}
          </pre>
          <p className="meta" data-testid="meta">
            {result
              ? `${sheet.model} · ${result.usage.completion_tokens} tokens · ${result.timings.tokens_per_second.toFixed(1)} tokens/s` +
                (result.timings.first_token !== null ? ` · first token ${result.timings.first_token.toFixed(2)} s` : "") +
                ` · seed ${result.seed}`
              : sheet.model && (streaming ? `${sheet.model} · writing…` : sheet.model)}
          </p>
          {notice && <div className="toast" role="status">{notice}</div>}
        </section>

        <History entries={history} selected={sheet.id} onSelect={show} onClear={() => setHistory([])} />
      </main>
      )}
    </div>
  );
}

function KeyForm({ initial, onSave }: { initial: string; onSave: (key: string) => void }) {
  const [key, setKey] = useState(initial);
  return (
    <form className="keyform" onSubmit={(e) => { e.preventDefault(); onSave(key.trim()); }}>
      <label>
        This server asks for an API key:
        <input type="password" value={key} onChange={(e) => setKey(e.target.value)} aria-label="API key"
          autoComplete="off" placeholder="paste the key given to rapgpt serve --api-key" />
      </label>
      <button className="primary small" type="submit">Save</button>
    </form>
  );
}
