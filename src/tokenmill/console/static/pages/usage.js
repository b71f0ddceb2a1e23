// Usage explorer: requests and tokens from the ledger, filtered by tenant, model, key and agent,
// grouped by any of them and by day, week or month; the records behind it as a CSV download.
//
// GET /admin/usage groups but does not filter: the explorer asks for the filter dimensions as
// extra groups, keeps the matching rows and folds them back to the chosen grouping (exact
// integer sums).

import { get, maybe, url } from "../api.js";
import { h, downloadBlob, toCsv } from "../dom.js";
import { compact, int } from "../format.js";
import { currentRange, rangePicker } from "../range.js";
import { COLORS, chartHost, timeChart } from "../charts.js";
import { columns as seriesColumns, fetchSeries } from "../series.js";
import { button, card, linkButton } from "../ui.js";
import { dataTable, tableCsvRows } from "../table.js";

const DIMS = [
  { id: "tenant", label: "Tenant" },
  { id: "key", label: "Key" },
  { id: "agent", label: "Agent" },
  { id: "owner", label: "Owner" },
  { id: "model", label: "Model" },
  { id: "replica", label: "Replica" },
];
const PERIODS = [["", "No period"], ["day", "Day"], ["week", "Week"], ["month", "Month"]];
const FILTERS = [
  { id: "tenant", label: "Tenant", series: "tenant", records: "tenant" },
  { id: "model", label: "Model", series: "model", records: "model" },
  { id: "key", label: "Key", series: "key_id", records: "key" },
  { id: "agent", label: "Agent", series: "agent", records: "agent" },
];
const SUMS = ["requests", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens"];

export async function render(ctx) {
  const range = currentRange(ctx.params);
  ctx.actions(rangePicker(range, (p) => ctx.setParams(p)));
  const platform = ctx.session.tenant === "system";
  const p = ctx.params;
  const groups = (p.get("group") ?? (platform ? "tenant,model" : "key,model")).split(",").filter((g) => DIMS.some((d) => d.id === g));
  const wanted = p.get("period");
  const period = wanted === "none" ? "" : PERIODS.some(([v]) => v && v === wanted) ? wanted : "day";
  const filters = Object.fromEntries(FILTERS.map((f) => [f.id, p.get(f.id) || ""]).filter(([, v]) => v));
  if (!platform) delete filters.tenant;
  const since = Math.floor(range.since), until = Math.ceil(range.until);
  // (an empty group_by would read as the server's default grouping: fold a model grouping instead)
  const asked = [...new Set([...groups, ...Object.keys(filters), ...(period ? [period] : [])])];
  if (!asked.length) asked.push("model");

  const seriesFilters = Object.fromEntries(FILTERS.filter((f) => filters[f.id]).map((f) => [f.series, filters[f.id]]));
  const [usage, options, series, keys, agents] = await Promise.all([
    get("/admin/usage", { group_by: asked.join(","), since, until }),
    get("/admin/usage", { group_by: platform ? "tenant,model,key,agent" : "model,key,agent", since, until }),
    fetchSeries(range, seriesFilters),
    ctx.can("keys:read") ? maybe("/admin/keys") : null,
    ctx.can("agents:read") ? maybe("/admin/agents") : null,
  ]);
  const keyName = new Map(((keys && keys.data) || []).map((k) => [k.id, k.name]));
  const agentName = new Map(((agents && agents.data) || []).map((a) => [a.id, a.name]));
  const label = { key: (v) => keyName.get(v), agent: (v) => agentName.get(v) };

  const rows = fold(usage.data.filter((r) => Object.entries(filters).every(([k, v]) => r[k] === v)), [...groups, ...(period ? [period] : [])]);
  const total = Object.keys(filters).length || !usage.total
    ? Object.fromEntries(SUMS.map((k) => [k, rows.reduce((a, r) => a + r[k], 0)]))
    : usage.total;

  // --- toolbar: filters, grouping, downloads
  const filterSelects = FILTERS.filter((f) => platform || f.id !== "tenant").map((f) => {
    const values = [...new Set(options.data.map((r) => r[f.id]).filter((v) => v !== null && v !== undefined))].sort();
    if (filters[f.id] && !values.includes(filters[f.id])) values.unshift(filters[f.id]);
    const sel = h("select", { class: "input sm", testid: `usage-filter-${f.id}`, "aria-label": `Filter by ${f.label}`,
      onchange: () => ctx.setParams({ [f.id]: sel.value || null }) },
      h("option", { value: "" }, `All ${f.label.toLowerCase()}s`),
      values.map((v) => h("option", { value: v }, label[f.id] && label[f.id](v) ? `${label[f.id](v)} (${v})` : v)));
    sel.value = filters[f.id] || "";
    return h("div", { class: "field" }, h("label", null, f.label), sel);
  });
  const groupToggles = h("div", { class: "group-picker", testid: "usage-group" }, DIMS.filter((d) => platform || d.id !== "tenant").map((d) => {
    const on = groups.includes(d.id);
    return h("button", { type: "button", class: ["toggle", on && "on"], testid: `usage-group-${d.id}`, "aria-pressed": on ? "true" : "false",
      onclick: () => {
        const next = on ? groups.filter((g) => g !== d.id) : [...groups, d.id];
        ctx.setParams({ group: next.join(",") || "," });
      } }, d.label);
  }));
  const periodSel = h("select", { class: "input sm", testid: "usage-period", "aria-label": "Period",
    onchange: () => ctx.setParams({ period: periodSel.value || "none" }) }, PERIODS.map(([v, l]) => h("option", { value: v }, l)));
  periodSel.value = period;

  const recordsQuery = { format: "csv", since, until };
  for (const f of FILTERS) if (filters[f.id]) recordsQuery[f.records] = filters[f.id];
  const cols = tableColumns(groups, period, label, total);
  const downloads = h("div", { class: "btn-row" },
    linkButton("Records (CSV)", url("/admin/usage/records", recordsQuery), { iconName: "download", testid: "usage-csv", download: "usage.csv", size: "sm" }),
    button("This table (CSV)", () => downloadBlob(`usage-${groups.join("-") || "total"}${period ? "-" + period : ""}.csv`, toCsv(tableCsvRows(cols, rows))),
      { iconName: "download", testid: "usage-table-csv", size: "sm" }));

  const toolbar = card(null, {}, h("div", { class: "toolbar" },
    filterSelects,
    h("div", { class: "field" }, h("label", null, "Group by"), groupToggles),
    h("div", { class: "field" }, h("label", null, "Period (UTC)"), periodSel),
    h("div", { class: "grow" }),
    h("div", { class: "field" }, h("label", null, "Download"), downloads)));

  const sc = seriesColumns(series, range);
  const chart = chartHost("usage-chart");
  const activeFilters = Object.entries(filters).map(([k, v]) => `${k} ${label[k] && label[k](v) ? label[k](v) : v}`);
  const table = dataTable(cols, rows, {
    testid: "usage-table", filter: true, sort: { key: "total_tokens", dir: "desc" },
    empty: { title: "No usage matches", text: activeFilters.length ? "Nothing in this range for these filters: widen the range or clear a filter." : "Nothing was metered in this range: pick a longer one, or send a request.", iconName: "usage" },
    totals: { values: totalsRow(cols, total), testid: (c) => (SUMS.includes(c.key) ? `usage-total-${c.key}` : null) },
  });
  ctx.mount(toolbar,
    card("Tokens", { subtitle: `per ${series.step}${activeFilters.length ? " · " + activeFilters.join(" · ") : ""}` }, chart),
    card(`${int(rows.length)} ${rows.length === 1 ? "group" : "groups"}`, { subtitle: `${range.label}, grouped by ${[...groups, period].filter(Boolean).join(", ") || "nothing (the total)"}`, cls: "flush" }, table));
  timeChart(chart, { x: sc.x, step: sc.step, fmt: compact, height: 180, series: [
    { label: "prompt tokens", values: sc.x.map((_, i) => sc.promptTps[i] * spanOf(sc, range, i)), color: COLORS.indigo },
    { label: "completion tokens", values: sc.x.map((_, i) => sc.completionTps[i] * spanOf(sc, range, i)), color: COLORS.emerald },
  ] });
}

// The seconds bucket i covers (columns() gives rates; the chart shows counts per bucket).
function spanOf(sc, range, i) {
  const t = sc.x[i];
  return Math.max(1, Math.min(t + sc.step, range.until) - Math.max(t, range.since));
}

function fold(rows, keys) {
  const acc = new Map();
  for (const r of rows) {
    const id = JSON.stringify(keys.map((k) => r[k] ?? null));
    let a = acc.get(id);
    if (!a) {
      a = Object.fromEntries([...keys.map((k) => [k, r[k] ?? null]), ...SUMS.map((s) => [s, 0])]);
      acc.set(id, a);
    }
    for (const s of SUMS) a[s] += r[s] ?? (s === "total_tokens" ? r.prompt_tokens + r.completion_tokens : 0);
  }
  return [...acc.values()];
}

function tableColumns(groups, period, label, total) {
  const cols = groups.map((g) => ({
    key: g, label: DIMS.find((d) => d.id === g).label,
    value: (r) => r[g],
    render: (r) => (r[g] === null ? h("span", { class: "muted" }, g === "agent" ? "no agent" : "—")
      : label[g] && label[g](r[g]) ? h("div", null, h("div", { class: "cell-main" }, label[g](r[g])), h("div", { class: "cell-sub mono" }, r[g]))
      : h("span", { class: "cell-main" }, r[g])),
  }));
  if (period) cols.push({ key: period, label: period[0].toUpperCase() + period.slice(1), render: (r) => r[period] });
  const share = (r) => (total.total_tokens ? r.total_tokens / total.total_tokens : 0);
  cols.push(
    { key: "requests", label: "Requests", num: true, render: (r) => int(r.requests) },
    { key: "prompt_tokens", label: "Prompt", unit: "tokens", num: true, render: (r) => int(r.prompt_tokens) },
    { key: "cached_tokens", label: "Cached", unit: "tokens", num: true, render: (r) => int(r.cached_tokens) },
    { key: "completion_tokens", label: "Completion", unit: "tokens", num: true, render: (r) => int(r.completion_tokens) },
    { key: "total_tokens", label: "Total", unit: "tokens", num: true, render: (r) => int(r.total_tokens) },
    { key: "share", label: "Share", num: true, value: share, render: (r) => `${(share(r) * 100).toFixed(1)}%` });
  return cols;
}

function totalsRow(cols, total) {
  const out = {};
  cols.forEach((c, i) => {
    if (SUMS.includes(c.key)) out[c.key] = h("span", { dataset: { value: String(total[c.key] ?? 0) } }, int(total[c.key] ?? 0));
    else if (i === 0) out[c.key] = "Total";
  });
  if (total.total_tokens) out.share = "100%";
  return out;
}
