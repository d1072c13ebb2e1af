// The list of this session's generations; choosing one shows it again.
import type { HistoryEntry } from "./history";
import { title } from "./history";

interface Props {
  entries: HistoryEntry[];
  selected: string | null;
  onSelect: (entry: HistoryEntry) => void;
  onClear: () => void;
}

const REASONS: Record<string, string> = {
  stop: "ended at stop",
  length: "full length",
  eot: "song ended",
  time_limit: "time limit",
  cancelled: "stopped",
  error: "failed",
};

export function History({ entries, selected, onSelect, onClear }: Props) {
  return (
    <aside className="panel history" aria-label="History">
      <div className="panel-head">
        <h2>History</h2>
        {entries.length > 0 && <button className="link" onClick={onClear}>Clear</button>}
      </div>
      {entries.length === 0 ? (
        <p className="empty">Your generations in this session will be listed here.</p>
      ) : (
        <ol>
          {entries.map((e) => (
            <li key={e.id}>
              <button className={e.id === selected ? "entry selected" : "entry"} onClick={() => onSelect(e)}>
                <span className="entry-title">{title(e)}</span>
                <span className="entry-meta">
                  {e.model} · {e.tokens === null ? "" : `${e.tokens} tokens · `}{REASONS[e.finish_reason] ?? e.finish_reason} ·{" "}
                  {new Date(e.created).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}
                </span>
              </button>
            </li>
          ))}
        </ol>
      )}
    </aside>
  );
}
