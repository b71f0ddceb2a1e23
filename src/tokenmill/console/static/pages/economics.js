// Economics: what the fleet's tokens cost against what they earn, per node, model, tenant and
// replica: cost per 1M tokens, gross margin, utilisation and unsold capacity, energy, ROI and
// payback; a what-if on utilisation and price; the capacity planner.

import { get } from "../api.js";
import { h } from "../dom.js";
import { compact, int, joules as joulesText, pct, seconds } from "../format.js";
import { money, sum } from "../money.js";
import { currentRange, rangePicker } from "../range.js";
import { fleetTotals, marginShare } from "../econ.js";
import { badge, card, kpi, kpiRow, meter, notice } from "../ui.js";
import { dataTable } from "../table.js";
import { whatIfCard } from "./economics/whatif.js";
import { plannerCard } from "./economics/planner.js";

export async function render(ctx) {
  const range = currentRange(ctx.params);
  ctx.actions(rangePicker(range, (p) => ctx.setParams(p)));
  const report = await get("/admin/economics", { since: Math.floor(range.since), until: Math.ceil(range.until) });
  const f = fleetTotals(report);
  const cur = f.currency;
  const m = (v, opts) => money(v, cur, opts);
  const nodes = report.nodes || [];
  const tokens = nodes.reduce((a, n) => a + (n.tokens || 0), 0);
  const joulesSum = nodes.reduce((a, n) => a + ((n.energy && n.energy.joules_per_token_all_in) || 0) * (n.tokens || 0), 0);
  const roi = Number(f.cost) ? Number(f.margin) / Number(f.cost) : null;
  const share = marginShare(f.margin, f.revenue);

  const banners = [];
  if (report.default_node) {
    const d = report.default_node;
    banners.push(notice("info", "Costs are a labelled estimate", d.basis,
      h("div", null, d.replace), d.node_file_example ? h("pre", { class: "pre" }, d.node_file_example) : null));
  }
  if ((report.without_node || []).length) {
    banners.push(notice("warn", "Some deployments run on no costed node", `Their tokens carry no cost: ${report.without_node.map((x) => (typeof x === "string" ? x : x.deployment || x.replica || JSON.stringify(x))).join(", ")}. Add their node to the cost file.`));
  }
  if (f.mixedCurrencies) banners.push(notice("warn", "Nodes cost in more than one currency", `Totals show ${cur} nodes only; the node table shows each in its own.`));

  ctx.mount(
    kpiRow([
      kpi({ id: "econ-revenue", label: "Revenue", value: m(f.revenue), raw: f.revenue, sub: `${range.label} · ${compact(tokens)} tokens` }),
      kpi({ id: "econ-cost", label: "Cost", value: m(f.cost), raw: f.cost, sub: f.estimated ? "estimated" : "hardware, power, opex" }),
      kpi({ id: "econ-margin", label: "Gross margin", value: m(f.margin), raw: f.margin, tone: Number(f.margin) < 0 ? "bad" : "ok",
        sub: `${share === null ? "no revenue" : `${pct(share)} of revenue`}${roi === null ? "" : ` · ROI ${pct(roi, 0)}`}` }),
      kpi({ id: "econ-cost-per-1m", label: "Cost / 1M tokens", value: f.costPer1M ? m(f.costPer1M) : "—", raw: f.costPer1M ?? "", sub: "all costs over all tokens" }),
      kpi({ id: "econ-utilisation", label: "Utilisation", value: pct(f.utilisation), raw: f.utilisation ?? "", tone: f.utilisation !== null && f.utilisation < 0.3 ? "warn" : null, sub: `${m(f.unsold, { cents: true })} unsold capacity` }),
      kpi({ id: "econ-energy", label: "Energy per token", value: tokens ? joulesText(joulesSum / tokens) : "—", sub: "all-in, with cooling (PUE)" }),
    ]),
    banners,
    card("Nodes", { subtitle: `What each machine cost over ${seconds(report.window ? report.window.seconds : range.seconds)}, what its tokens earned, and how busy it was`, cls: "flush" }, nodesTable(nodes)),
    card("By model", { subtitle: "Each node's cost split by the busy time its models used", cls: "flush" }, breakdown(report.by_model || [], "model", "Model", cur)),
    card("By tenant", { subtitle: "What serving each tenant cost against what it paid", cls: "flush" }, breakdown(report.by_tenant || [], "tenant", "Tenant", cur)),
    h("div", { class: "grid-2" }, whatIfCard(f, range), card("By replica", { cls: "flush", subtitle: "Cost per 1M tokens of each replica" }, replicaTable(report.by_replica || [], cur))),
    plannerCard(ctx));
}

function nodesTable(nodes) {
  return dataTable([
    { key: "node", label: "Node", render: (n) => {
      const a = (n.inputs || {}).acquisition || {};
      const hour = (n.inputs || {}).hour_cost || {};
      return h("div", null, h("div", { class: "cell-main" }, n.node, n.cost_estimated ? [" ", badge("estimate", "info")] : null),
        h("div", { class: "cell-sub" }, [n.hardware, a.mode, hour.total || a.per_hour ? `${money(hour.total || a.per_hour, n.currency)}/h` : null].filter(Boolean).join(" · ") || "—"));
    } },
    { key: "utilisation", label: "Utilisation", render: (n) => meter(n.utilisation, { label: pct(n.utilisation, 0), warnAt: 2, badAt: 2 }) },
    { key: "tokens", label: "Tokens", num: true, render: (n) => compact(n.tokens) },
    { key: "cost", label: "Cost", num: true, value: (n) => Number(n.cost), render: (n) => money(n.cost, n.currency, { cents: true }) },
    { key: "cost_per_1m_tokens", label: "Cost / 1M", num: true, value: (n) => Number(n.cost_per_1m_tokens), render: (n) => h("div", null, n.cost_per_1m_tokens ? money(n.cost_per_1m_tokens, n.currency) : "—",
      n.cost_per_1m_tokens_if_busy ? h("div", { class: "cell-sub" }, `${money(n.cost_per_1m_tokens_if_busy, n.currency)} if busy`) : null) },
    { key: "revenue", label: "Revenue", num: true, value: (n) => Number(n.revenue), render: (n) => money(n.revenue, n.currency, { cents: true }) },
    { key: "gross_margin", label: "Margin", num: true, value: (n) => Number(n.gross_margin), render: (n) => h("span", { class: Number(n.gross_margin) < 0 ? "bad-text" : "ok-text" }, money(n.gross_margin, n.currency, { cents: true })) },
    { key: "roi", label: "ROI", num: true, value: (n) => Number(n.roi), render: (n) => (n.roi === null || n.roi === undefined ? "—" : pct(Number(n.roi), 0)) },
    { key: "payback_months", label: "Payback", num: true, value: (n) => Number(n.payback_months), render: (n) => (n.payback_months ? `${n.payback_months} mo` : h("span", { class: "muted", title: n.payback_basis || "" }, "n/a")) },
    { key: "energy", label: "Power", num: true, value: (n) => (n.energy || {}).watts, render: (n) => (n.energy ? h("div", { title: n.energy.basis || "" }, `${int(n.energy.watts)} W`, n.energy.joules_per_token_all_in ? h("div", { class: "cell-sub" }, `${joulesText(n.energy.joules_per_token_all_in)}/token`) : null) : null) },
  ], nodes, { testid: "econ-nodes", rowTestid: (n) => `econ-node-${n.node}`,
    empty: { title: "No costed nodes", text: "Describe what each machine costs (rented per hour, or owned: price, years, power) in the node cost file; see docs/economics.md.", iconName: "economics" } });
}

function breakdown(rows, key, label, cur) {
  const maxRev = Math.max(...rows.map((r) => Math.max(Number(r.revenue || 0), Number(r.cost || 0))), 0);
  const bar = (v, alt) => {
    const fill = h("div", { class: ["hbar-fill", alt && "alt"] });
    fill.style.width = `${maxRev ? Math.max(0, (Number(v) / maxRev) * 100) : 0}%`;
    return h("div", { class: "hbar-track" }, fill);
  };
  const total = { revenue: sum(rows.map((r) => r.revenue || "0")), cost: sum(rows.map((r) => r.cost || "0")), margin: sum(rows.map((r) => r.gross_margin || "0")) };
  return dataTable([
    { key, label, render: (r) => h("span", { class: "cell-main" }, r[key]) },
    { key: "tokens", label: "Tokens", unit: "in / out", num: true, value: (r) => r.input_tokens + r.output_tokens, render: (r) => `${compact(r.input_tokens)} / ${compact(r.output_tokens)}` },
    { key: "revenue", label: "Revenue vs cost", value: (r) => Number(r.revenue), render: (r) => h("div", { class: "bars", title: "revenue (top), cost (bottom)" }, bar(r.revenue, false), bar(r.cost, true)) },
    { key: "rev", label: "Revenue", num: true, value: (r) => Number(r.revenue), render: (r) => money(r.revenue, r.currency || cur, { cents: true }) },
    { key: "cost", label: "Cost", num: true, value: (r) => Number(r.cost), render: (r) => money(r.cost, r.currency || cur, { cents: true }) },
    { key: "cost_per_1m_tokens", label: "Cost / 1M", num: true, value: (r) => Number(r.cost_per_1m_tokens), render: (r) => (r.cost_per_1m_tokens ? money(r.cost_per_1m_tokens, r.currency || cur) : "—") },
    { key: "gross_margin", label: "Margin", num: true, value: (r) => Number(r.gross_margin), render: (r) => h("div", null, h("span", { class: Number(r.gross_margin) < 0 ? "bad-text" : "ok-text" }, money(r.gross_margin, r.currency || cur, { cents: true })),
      Number(r.revenue) ? h("div", { class: "cell-sub" }, pct(Number(r.gross_margin) / Number(r.revenue), 0)) : null) },
  ], rows, { dense: true, sort: { key: "rev", dir: "desc" }, testid: `econ-by-${key}`,
    empty: { title: "No priced usage in this range", text: "Tokens appear here once requests are metered and priced." },
    totals: rows.length ? { values: { [key]: "Total", rev: money(total.revenue, cur, { cents: true }), cost: money(total.cost, cur, { cents: true }), gross_margin: money(total.margin, cur, { cents: true }) } } : null });
}

function replicaTable(rows, cur) {
  return dataTable([
    { key: "replica", label: "Replica", render: (r) => h("span", { class: "mono" }, r.replica) },
    { key: "tokens", label: "Tokens", num: true, value: (r) => r.input_tokens + r.output_tokens, render: (r) => compact(r.input_tokens + r.output_tokens) },
    { key: "cost", label: "Cost", num: true, value: (r) => Number(r.cost), render: (r) => money(r.cost, r.currency || cur, { cents: true }) },
    { key: "cost_per_1m_tokens", label: "Cost / 1M", num: true, value: (r) => Number(r.cost_per_1m_tokens), render: (r) => (r.cost_per_1m_tokens ? money(r.cost_per_1m_tokens, r.currency || cur) : "—") },
  ], rows, { dense: true, sort: { key: "cost_per_1m_tokens", dir: "desc" }, testid: "econ-by-replica", empty: { title: "No replica served tokens in this range" } });
}
