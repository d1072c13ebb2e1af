// "Real or written by the model?": a blind test. An excerpt of a few lines from a real song or from a model, two
// buttons, and the score: this person's, and everyone's (kept by the server, so it survives restarts).
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "./api";
import type { Excerpt, JudgeScore } from "./judge";
import { fetchScore, nextExcerpt, REAL, scoreText, sendAnswer, takenForReal, verdictText } from "./judge";

interface Props {
  apiKey: string;
  ready: boolean; // the server answers requests
  onUnauthorized: () => void; // the server wants an API key
}

export function JudgePage({ apiKey, ready, onUnauthorized }: Props) {
  const [model, setModel] = useState(""); // "" = any model
  const [excerpt, setExcerpt] = useState<Excerpt | null>(null);
  const [score, setScore] = useState<JudgeScore | null>(null);
  const [mine, setMine] = useState({ answers: 0, correct: 0 });
  const [verdict, setVerdict] = useState<string | null>(null);
  const [empty, setEmpty] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const unauthorized = useRef(onUnauthorized); // the latest, without reloading the excerpt when it changes
  unauthorized.current = onUnauthorized;

  const onError = useCallback((e: unknown) => {
    if (e instanceof ApiError && e.status === 401) unauthorized.current();
    setError(e instanceof Error ? e.message : String(e));
  }, []);

  const load = useCallback(async (chosen: string) => {
    try {
      setExcerpt(await nextExcerpt(chosen, apiKey));
      setEmpty(null);
      setError(null);
    } catch (e) {
      setExcerpt(null);
      if (e instanceof ApiError && e.status === 404) setEmpty(e.message);
      else onError(e);
    }
  }, [apiKey, onError]);

  useEffect(() => {
    if (!ready) return;
    fetchScore(apiKey).then(setScore, onError);
    load(model);
  }, [ready, apiKey, model, load, onError]);

  const answer = async (real: boolean) => {
    if (!excerpt || busy) return;
    setBusy(true);
    try {
      const v = await sendAnswer(excerpt.id, real, apiKey);
      setVerdict(verdictText(v));
      setScore(v.score);
      setMine((m) => ({ answers: m.answers + 1, correct: m.correct + (v.correct ? 1 : 0) }));
      await load(model);
    } catch (e) {
      onError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="judge">
      <section className="panel judge-card" aria-label="Real or model">
        <div className="panel-head">
          <h2>Real or written by the model?</h2>
          <label className="judge-model">
            <span className="hint">Model under test</span>
            <select value={model} onChange={(e) => setModel(e.target.value)} aria-label="Model under test">
              <option value="">Any model</option>
              {score?.models.map((m) => <option key={m} value={m}>{m}</option>)}
            </select>
          </label>
        </div>
        {error && <div className="error" role="alert">{error}</div>}
        {empty ? (
          <p className="placeholder" role="note">{empty}</p>
        ) : (
          <pre className="lyrics excerpt" data-testid="excerpt">{excerpt?.text ?? "…"}</pre>
        )}
        <div className="actions">
          <button className="primary" onClick={() => answer(true)} disabled={!excerpt || busy}>Real song</button>
          <button className="secondary" onClick={() => answer(false)} disabled={!excerpt || busy}>The model</button>
        </div>
        <p className="meta" role="status" aria-label="Verdict">{verdict ?? "Read the lines, then choose."}</p>
      </section>

      <aside className="panel judge-score" aria-label="Score">
        <h2>Your score</h2>
        <p data-testid="my-score">{scoreText(mine.correct, mine.answers)}</p>
        <h2>Everyone</h2>
        <p data-testid="everyone-score">{score ? scoreText(score.correct, score.answers) : "…"}</p>
        {score && score.sources.length > 0 && (
          <table className="judge-table">
            <thead><tr><th>Lines by</th><th>Taken for real</th></tr></thead>
            <tbody>
              {score.sources.map((t) => (
                <tr key={t.source}>
                  <td>{t.source === REAL ? "real songs" : t.source}</td>
                  <td>{takenForReal(t)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </aside>
    </main>
  );
}
