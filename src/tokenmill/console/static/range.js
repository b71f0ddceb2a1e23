// The time range shared by Overview, Usage and Economics: last 1h / 24h / 7d / 30d or a
// custom UTC window, kept in the URL (?range=7d or ?since=&until=) so a view can be linked.

import { h } from "./dom.js";
import { fromLocalInput, toLocalInput } from "./format.js";

export const PRESETS = [
  { id: "1h", label: "1h", seconds: 3600 },
  { id: "24h", label: "24h", seconds: 86400 },
  { id: "7d", label: "7d", seconds: 7 * 86400 },
  { id: "30d", label: "30d", seconds: 30 * 86400 },
];

// The series API buckets by hour or day: hours up to a week, days beyond.
function stepFor(seconds) {
  return seconds <= 8 * 86400 ? "hour" : "day";
}

// -> {id, since, until, seconds, step, label}
export function currentRange(params, now = Date.now() / 1000) {
  const since = Number(params.get("since"));
  const until = Number(params.get("until"));
  if (params.get("range") === "custom" && since > 0 && until > since) {
    return { id: "custom", since, until, seconds: until - since, step: stepFor(until - since), label: "custom range" };
  }
  const p = PRESETS.find((x) => x.id === params.get("range")) || PRESETS[1];
  const end = Math.floor(now);
  // The window starts on a bucket's start, so the charts' buckets and the totals cover the
  // very same records (totals are exact for any window; a bucket is whole or absent).
  const step = stepFor(p.seconds), size = STEP_SECONDS[step];
  const start = Math.floor((end - p.seconds) / size) * size;
  return { id: p.id, since: start, until: end, seconds: end - start, step, label: `last ${p.label}` };
}

// The picker; onChange({range} | {range: "custom", since, until}) updates the URL and re-renders.
export function rangePicker(range, onChange) {
  const customBox = h("div", { class: "range-custom", hidden: range.id !== "custom" });
  const sinceInput = h("input", { type: "datetime-local", class: "input sm", testid: "range-since", value: toLocalInput(range.since), "aria-label": "From (UTC)" });
  const untilInput = h("input", { type: "datetime-local", class: "input sm", testid: "range-until", value: toLocalInput(range.until), "aria-label": "To (UTC)" });
  const err = h("span", { class: "range-error" });
  customBox.append(sinceInput, h("span", { class: "muted" }, "→"), untilInput, h("span", { class: "muted" }, "UTC"),
    h("button", { type: "button", class: "btn sm primary", testid: "range-apply", onclick: () => {
      const s = fromLocalInput(sinceInput.value), u = fromLocalInput(untilInput.value);
      if (!s || !u || u <= s) { err.textContent = "The end must come after the start"; return; }
      onChange({ range: "custom", since: String(Math.floor(s)), until: String(Math.floor(u)) });
    } }, "Apply"), err);
  const buttons = [...PRESETS, { id: "custom", label: "Custom" }].map((p) =>
    h("button", { type: "button", class: ["seg", p.id === range.id && "active"], testid: `range-${p.id}`,
      "aria-pressed": p.id === range.id ? "true" : "false",
      onclick: () => {
        if (p.id === "custom") { customBox.hidden = false; return; }
        onChange({ range: p.id, since: null, until: null });
      } }, p.label));
  return h("div", { class: "range", testid: "range-picker" }, h("div", { class: "segmented" }, buttons), customBox);
}

export const STEP_SECONDS = { hour: 3600, day: 86400 };

// Every bucket start from since to until, so gaps in the data show as zero, not as a jump.
export function buckets(since, until, step) {
  const size = STEP_SECONDS[step];
  const out = [];
  for (let t = Math.floor(since / size) * size; t < until; t += size) out.push(t);
  return out;
}
