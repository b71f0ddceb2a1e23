// Overview: KPI tiles, four charts over the chosen range, the top models and tenants, and
// replica health.

import { get, maybe } from "../api.js";
import { h, rich } from "../dom.js";
import { compact, dateTime, int, ms, pct, plural } from "../format.js";
import { money, moneyMap, moneyShort } from "../money.js";
import { currentRange, rangePicker } from "../range.js";
import { COLORS, chartHost, timeChart } from "../charts.js";
import { columns, fetchSeries, totals, weightedTtft } from "../series.js";
import { fleetTotals, marginShare } from "../econ.js";
import { badge, card, kpi, kpiRow, meter, notice } from "../ui.js";
import { dataTable } from "../table.js";

const startOfUtcDay = (now = Date.now() / 1000) => Math.floor(now / 86400) * 86400;

export async function render(ctx) {
  const range = currentRange(ctx.params);
  ctx.actions(rangePicker(range, (p) => ctx.setParams(p)));
  const platform = ctx.session.tenant === "system";
  const by = platform ? "tenant" : "key";
  const now = Date.now() / 1000;

  const [series, usage, today, econ, deps, keys] = await Promise.all([
    fetchSeries(range),
    get("/admin/usage", { group_by: `${by},model`, since: Math.floor(range.since), until: Math.ceil(range.until) }),
    fetchSeries({ since: startOfUtcDay(now), until: now, step: "hour" }),
    ctx.can("kpis:read") ? maybe("/admin/economics", { since: Math.floor(range.since), until: Math.ceil(range.until) }) : null,
    ctx.can("deployments:read") ? maybe("/admin/deployments") : null,
    !platform && ctx.can("keys:read") ? maybe("/admin/keys") : null,
  ]);

  const t = totals(series);
  const total = usage.total || { requests: 0, prompt_tokens: 0, cached_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  const revenueToday = totals(today).revenue;
  const fleet = econ ? fleetTotals(econ) : null;
  const cols = columns(series, range);
  const cur = cols.currencies[0] || (fleet && fleet.currency) || "USD";
  const moneyWord = platform ? "Revenue" : "Spend";

  const tiles = [
    kpi({ id: "requests", label: `Requests · ${range.label}`, value: int(total.requests), raw: total.requests,
      sub: `${compact(total.requests / Math.max(1, range.seconds / 60))} per minute` }),
    kpi({ id: "tokens", label: `Tokens · ${range.label}`, value: int(total.total_tokens), raw: total.total_tokens,
      sub: `${compact(total.prompt_tokens)} in · ${compact(total.completion_tokens)} out` }),
    kpi({ id: "revenue", label: `${moneyWord} · ${range.label}`, value: moneyMap(t.revenue, cur), raw: JSON.stringify(t.revenue),
      sub: total.total_tokens && t.revenue[cur] ? `${moneyShort((Number(t.revenue[cur]) / total.total_tokens) * 1e6, cur)} per 1M tokens` : "from the ledger, priced" }),
    kpi({ id: "revenue-today", label: `${moneyWord} today (UTC)`, value: moneyMap(revenueToday, cur), raw: JSON.stringify(revenueToday),
      sub: `since 00:00 UTC` }),
  ];
  if (fleet) {
    const share = marginShare(fleet.margin, fleet.revenue);
    tiles.push(
      kpi({ id: "cost", label: `Cost · ${range.label}`, value: money(fleet.cost, fleet.currency), raw: fleet.cost,
        sub: fleet.costPer1M ? `${money(fleet.costPer1M, fleet.currency)} per 1M tokens` : (fleet.estimated ? "estimated hardware cost" : "hardware, power, opex") }),
      kpi({ id: "margin", label: "Gross margin", value: money(fleet.margin, fleet.currency), raw: fleet.margin,
        tone: Number(fleet.margin) < 0 ? "bad" : "ok", sub: share === null ? "no revenue in range" : `${pct(share)} of revenue` }),
      kpi({ id: "utilisation", label: "Utilisation", value: pct(fleet.utilisation), raw: fleet.utilisation,
        tone: fleet.utilisation !== null && fleet.utilisation < 0.3 ? "warn" : null,
        sub: `${money(fleet.unsold, fleet.currency)} unsold capacity` }));
  }
  if (deps) {
    const list = deps.data || [];
    const want = list.reduce((a, d) => a + (d.replicas || 0), 0);
    const ready = list.reduce((a, d) => a + (d.ready_replicas || 0), 0);
    const failing = list.filter((d) => d.state === "failed").length;
    tiles.push(kpi({ id: "replicas", label: "Replicas healthy", value: `${ready} / ${want}`, raw: `${ready}/${want}`,
      tone: failing ? "bad" : ready < want ? "warn" : want ? "ok" : null,
      sub: failing ? `${plural(failing, "deployment")} failed` : list.length ? plural(list.length, "deployment") : "no models deployed" }));
  }
  const p50 = weightedTtft(series, "ttft_p50_ms");
  const p90 = weightedTtft(series, "ttft_p90_ms");
  tiles.push(
    kpi({ id: "ttft", label: "Time to first token", value: p50 === null ? "—" : `${ms(p50)} p50`, raw: p50 === null ? "" : `${p50.toFixed(1)}/${p90.toFixed(1)}`,
      sub: p90 === null ? "no samples in range" : `p90 ${ms(p90)}`, title: "Each bucket's percentile, weighted by its requests" }),
    kpi({ id: "errors", label: "Errors", value: int(t.errors), raw: t.errors,
      tone: t.requests && t.errors / t.requests > 0.02 ? "bad" : null,
      sub: t.requests ? `${pct(t.errors / t.requests, 2)} of requests` : "no requests" }));

  const fmtTps = (v) => `${compact(v)}`;
  const charts = [
    ["Throughput", "tokens per second", "chart-throughput", (el) => timeChart(el, { x: cols.x, step: cols.step, fmt: fmtTps, series: [
      { label: "prompt tok/s", values: cols.promptTps, color: COLORS.indigo },
      { label: "completion tok/s", values: cols.completionTps, color: COLORS.emerald }] })],
    ["Requests", `per ${series.step}`, "chart-requests", (el) => timeChart(el, { x: cols.x, step: cols.step, fmt: (v) => compact(v), series: [
      { label: "requests", values: cols.requests, color: COLORS.blue, bars: true },
      { label: "errors", values: cols.errors, color: COLORS.red, fill: false }] })],
    ["Time to first token", "p50 and p90 per bucket", "chart-ttft", (el) => timeChart(el, { x: cols.x, step: cols.step, fmt: ms, emptyText: "No latency samples in this range", series: [
      { label: "p50", values: cols.p50, color: COLORS.violet },
      { label: "p90", values: cols.p90, color: COLORS.amber, fill: false }] })],
    [moneyWord, `${cur} per ${series.step}`, "chart-revenue", (el) => timeChart(el, { x: cols.x, step: cols.step, fmt: (v) => moneyShort(v, cur), emptyText: "No priced usage in this range", series: [
      { label: cur, values: cols.revenue[cur] || cols.x.map(() => 0), color: COLORS.teal, bars: true }] })],
  ];
  const chartCards = charts.map(([title, sub, id]) => {
    const host = chartHost(id);
    return { el: card(title, { subtitle: sub }, host), host };
  });

  const lower = lowerCards(ctx, usage, by, deps, keys, econ);
  const warnings = [];
  if (fleet && fleet.estimated) warnings.push(notice("info", "Costs are estimates",
    "At least one node has no cost file entry and is priced by a labelled default. Economics explains the basis and how to set real figures.",
    h("a", { href: "/console/economics" }, "Open Economics →")));
  if (series.historyFrom && series.historyFrom > range.since) {
    warnings.push(notice("info", "Part of this range is past the kept history", `Usage before ${dateTime(series.historyFrom)} UTC has been pruned; those buckets read zero.`));
  }
  if (!total.requests) warnings.push(gettingStarted(ctx, deps, range));
  ctx.mount(
    kpiRow(tiles, "kpis"),
    warnings,
    h("div", { class: "grid-2" }, chartCards.map((c) => c.el)),
    lower);
  charts.forEach(([, , , draw], i) => draw(chartCards[i].host));
}

function share(n, of) {
  return meter(of ? n / of : 0, { label: of ? pct(n / of, 0) : "—", warnAt: 2, badAt: 2 });
}

function fold(rows, key) {
  const acc = new Map();
  for (const r of rows) {
    const k = r[key] ?? "(none)";
    const a = acc.get(k) || { name: k, requests: 0, total_tokens: 0 };
    a.requests += r.requests;
    a.total_tokens += r.total_tokens;
    acc.set(k, a);
  }
  return [...acc.values()].sort((a, b) => b.total_tokens - a.total_tokens);
}

function lowerCards(ctx, usage, by, deps, keys, econ) {
  const rows = usage.data || [];
  const all = (usage.total && usage.total.total_tokens) || 0;
  const revenueOf = new Map(((econ && econ.by_model) || []).map((m) => [m.model, m]));
  const models = fold(rows, "model").slice(0, 8);
  const modelTable = dataTable([
    { key: "name", label: "Model", render: (r) => h("span", { class: "cell-main" }, r.name) },
    { key: "requests", label: "Requests", num: true, render: (r) => int(r.requests) },
    { key: "total_tokens", label: "Tokens", num: true, render: (r) => compact(r.total_tokens), value: (r) => r.total_tokens },
    econ ? { key: "revenue", label: "Revenue", num: true, value: (r) => Number((revenueOf.get(r.name) || {}).revenue || 0),
      render: (r) => (revenueOf.get(r.name) ? money(revenueOf.get(r.name).revenue, revenueOf.get(r.name).currency, { cents: true }) : null) } : null,
    { key: "share", label: "Share", num: true, value: (r) => r.total_tokens, render: (r) => (all ? pct(r.total_tokens / all, 0) : "—") },
  ].filter(Boolean), models, { empty: { title: "No usage in this range", text: "Requests to /v1 show here once they are metered." }, dense: true });

  const keyName = new Map(((keys && keys.data) || []).map((k) => [k.id, k.name]));
  const who = fold(rows, by).slice(0, 8);
  const whoTable = dataTable([
    { key: "name", label: by === "tenant" ? "Tenant" : "Key", render: (r) => by === "key"
      ? h("div", null, h("div", { class: "cell-main" }, keyName.get(r.name) || r.name), h("div", { class: "cell-sub mono" }, r.name))
      : h("span", { class: "cell-main" }, r.name) },
    { key: "requests", label: "Requests", num: true, render: (r) => int(r.requests) },
    { key: "total_tokens", label: "Tokens", num: true, render: (r) => compact(r.total_tokens), value: (r) => r.total_tokens },
    { key: "share", label: "Share", value: (r) => r.total_tokens, render: (r) => share(r.total_tokens, all) },
  ], who, { empty: { title: "No usage in this range", text: "Usage appears here once keys send requests." }, dense: true });

  const cards = [
    card("Top models", { subtitle: "by tokens in range", cls: "flush" }, modelTable),
    card(by === "tenant" ? "Top tenants" : "Top keys", { subtitle: "by tokens in range", cls: "flush" }, whoTable),
  ];
  if (deps) {
    const list = deps.data || [];
    cards.push(card("Deployments", { subtitle: "replicas ready of desired", cls: "flush",
      actions: [h("a", { class: "btn sm", href: "/console/models", testid: "overview-models-link" }, "Manage")] },
      dataTable([
        { key: "name", label: "Deployment", render: (d) => h("span", { class: "cell-main" }, d.name) },
        { key: "state", label: "State", render: (d) => badge(d.state) },
        { key: "ready", label: "Ready", num: true, value: (d) => d.ready_replicas, render: (d) => `${d.ready_replicas} / ${d.replicas}` },
      ], list, { empty: { title: "No models deployed", text: "Deploy one from Models, or run `tokenmill models deploy`." }, dense: true })));
  }
  return h("div", { class: cards.length === 3 ? "grid-lower" : "grid-2" }, cards);
}

// Shown while the range has no traffic: the three steps from nothing to a metered request.
function gettingStarted(ctx, deps, range) {
  const noModels = deps && !(deps.data || []).length;
  const step = (n, title, text, href, label) => h("li", { class: "step" }, h("span", { class: "step-n" }, String(n)),
    h("div", null, h("div", { class: "cell-main" }, title), h("div", { class: "muted" }, rich(text)),
      href ? h("a", { href, class: "step-link" }, label) : null));
  const steps = [];
  if (ctx.can("deployments:write")) steps.push(step(1, noModels ? "Deploy a model" : "Models are deployed", noModels
    ? "A GGUF file on llama.cpp, or any OpenAI-compatible endpoint; or `tokenmill models deploy NAME --path model.gguf`."
    : "Check that their replicas are ready.", "/console/models", "Open Models →"));
  if (ctx.can("keys:write")) steps.push(step(steps.length + 1, "Create an API key", "One per application or person, in its tenant; the secret is shown once.", "/console/tenants?tab=keys", "Open Access →"));
  steps.push(step(steps.length + 1, "Send a request", `\`curl ${location.origin}/v1/chat/completions -H "Authorization: Bearer $KEY" -d '{"model": "MODEL", "messages": [...]}'\` (any OpenAI SDK works too). It shows here within seconds.`));
  return card(`No requests in the ${range.label}`, { subtitle: "From nothing to a metered request", testid: "getting-started" }, h("ol", { class: "steps" }, steps));
}
