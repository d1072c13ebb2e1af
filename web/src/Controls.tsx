// The sampling controls: the three that matter most in view, the rest folded under "More settings".
import type { Limits, SamplingSettings } from "./api";
import { STOP_CHOICES } from "./settings";

// The props of a panel of controls over one settings object of type T.
export interface ControlsProps<T> {
  value: T;
  limits: Limits | null; // the server's, once read
  onChange: (value: T) => void;
  disabled: boolean;
}

export function Controls({ value, limits, onChange, disabled }: ControlsProps<SamplingSettings>) {
  const set = <K extends keyof SamplingSettings>(key: K, v: SamplingSettings[K]) => onChange({ ...value, [key]: v });
  const penalty = limits?.max_penalty;
  const stopIndex = Math.max(0, STOP_CHOICES.findIndex((c) => c.stop.join("\u0000") === value.stop.join("\u0000")));
  return (
    <fieldset className="controls" disabled={disabled}>
      <Slider label="Length" hint="tokens to write" min={16}
        max={limits?.max_new_tokens ?? value.max_new_tokens} step={16}
        value={value.max_new_tokens} onChange={(v) => set("max_new_tokens", v)} />
      <Slider label="Temperature" hint="higher is wilder, 0 always picks the likeliest" min={0}
        max={limits?.max_temperature ?? value.temperature} step={0.05}
        value={value.temperature} onChange={(v) => set("temperature", v)} />
      <Slider label="Top-p" hint="1 keeps every word in play" min={0.05} max={1} step={0.01}
        value={value.top_p ?? 1} onChange={(v) => set("top_p", v >= 1 ? null : v)} />
      <label className="field">
        <span className="field-label">Stop</span>
        <select value={stopIndex} onChange={(e) => set("stop", STOP_CHOICES[Number(e.target.value)].stop)}>
          {STOP_CHOICES.map((c, i) => <option key={c.label} value={i}>{c.label}</option>)}
        </select>
      </label>
      <details className="advanced">
        <summary>More settings</summary>
        <div className="advanced-grid">
          <NumberField label="Top-k" hint="off" min={1} max={limits?.top_k} step={1} value={value.top_k}
            onChange={(v) => set("top_k", v)} />
          <NumberField label="Min-p" hint="off" min={0} max={1} step={0.01} value={value.min_p}
            onChange={(v) => set("min_p", v)} />
          <NumberField label="Repetition penalty" hint="1 = off" min={limits?.min_repetition_penalty}
            max={limits?.max_repetition_penalty} step={0.05}
            value={value.repetition_penalty} onChange={(v) => set("repetition_penalty", v ?? 1)} />
          <NumberField label="Frequency penalty" hint="0 = off" min={penalty && -penalty} max={penalty} step={0.1}
            value={value.frequency_penalty} onChange={(v) => set("frequency_penalty", v ?? 0)} />
          <NumberField label="Presence penalty" hint="0 = off" min={penalty && -penalty} max={penalty} step={0.1}
            value={value.presence_penalty} onChange={(v) => set("presence_penalty", v ?? 0)} />
          <NumberField label="Seed" hint="random" min={0} step={1} value={value.seed}
            onChange={(v) => set("seed", v)} />
        </div>
      </details>
    </fieldset>
  );
}

interface SliderProps {
  label: string;
  hint: string;
  min: number;
  max: number;
  step: number;
  value: number;
  onChange: (v: number) => void;
}

function Slider({ label, hint, min, max, step, value, onChange }: SliderProps) {
  return (
    <label className="field slider">
      <span className="field-label">
        {label} <output>{value}</output>
      </span>
      <input type="range" min={min} max={max} step={step} value={value} aria-label={label}
        onChange={(e) => onChange(Number(e.target.value))} />
      <span className="hint">{hint}</span>
    </label>
  );
}

interface NumberFieldProps {
  label: string;
  hint: string;
  min?: number;
  max?: number;
  step: number;
  value: number | null;
  onChange: (v: number | null) => void;
}

/** A number input where an empty box means "off" (null). */
function NumberField({ label, hint, min, max, step, value, onChange }: NumberFieldProps) {
  return (
    <label className="field">
      <span className="field-label">{label}</span>
      <input type="number" inputMode="decimal" min={min} max={max} step={step} placeholder={hint} aria-label={label}
        value={value ?? ""}
        onChange={(e) => onChange(e.target.value === "" || Number.isNaN(e.target.valueAsNumber)
          ? null : e.target.valueAsNumber)} />
    </label>
  );
}
