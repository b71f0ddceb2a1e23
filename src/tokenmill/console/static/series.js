// Usage over time: GET /admin/usage/series, turned into chart columns (one value per bucket,
// zero where the ledger has nothing, so gaps read as quiet time, not as missing data).

import { get } from "./api.js";
import { buckets, STEP_SECONDS } from "./range.js";
import { sumByCurrency, toNumber } from "./money.js";

// -> {step, data, historyFrom}; the server returns every bucket of the window (zeros included).
export async function fetchSeries(range, filters = {}) {
  const out = await get("/admin/usage/series", { since: Math.floor(range.since), until: Math.ceil(range.until), step: range.step, ...filters });
  return { step: out.step || range.step, data: out.data || [], historyFrom: out.history_from ?? null };
}

// -> {x, promptTps, completionTps, requests, errors, p50, p90, revenue: {cur: [..]}, currencies}
export function columns(series, range) {
  const size = STEP_SECONDS[series.step] || 3600;
  const x = buckets(range.since, range.until, series.step);
  const at = new Map(series.data.map((row) => [Math.floor(row.t / size) * size, row]));
  const currencies = Object.keys(sumByCurrency(series.data.map((r) => r.revenue)));
  const out = { x, step: size, promptTps: [], completionTps: [], requests: [], errors: [], p50: [], p90: [], revenue: {}, currencies };
  for (const c of currencies) out.revenue[c] = [];
  for (const t of x) {
    const row = at.get(t);
    const span = Math.max(1, Math.min(t + size, range.until) - Math.max(t, range.since)); // seconds this bucket covers
    out.promptTps.push(row ? row.prompt_tokens / span : 0);
    out.completionTps.push(row ? row.completion_tokens / span : 0);
    out.requests.push(row ? row.requests : 0);
    out.errors.push(row ? row.errors || 0 : 0);
    out.p50.push(row && row.ttft_p50_ms !== null && row.ttft_p50_ms !== undefined ? row.ttft_p50_ms : null);
    out.p90.push(row && row.ttft_p90_ms !== null && row.ttft_p90_ms !== undefined ? row.ttft_p90_ms : null);
    for (const c of currencies) out.revenue[c].push(row && row.revenue && row.revenue[c] ? toNumber(row.revenue[c]) : 0);
  }
  return out;
}

// Exact totals over the buckets: integers summed as numbers, money as decimal strings.
export function totals(series) {
  const t = { requests: 0, errors: 0, prompt_tokens: 0, cached_tokens: 0, completion_tokens: 0 };
  for (const row of series.data) for (const k of Object.keys(t)) t[k] += row[k] || 0;
  t.revenue = sumByCurrency(series.data.map((r) => r.revenue));
  return t;
}

// A typical TTFT over the range: each bucket's percentile weighted by its requests (the
// buckets' own percentiles cannot be merged exactly; this is labelled as such where shown).
export function weightedTtft(series, key) {
  let w = 0, acc = 0;
  for (const row of series.data) {
    const v = row[key];
    if (v === null || v === undefined || !row.requests) continue;
    acc += v * row.requests;
    w += row.requests;
  }
  return w ? acc / w : null;
}
