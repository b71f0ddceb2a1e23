// Fleet-wide figures from GET /admin/economics: exact money sums (decimal strings) per
// currency, and utilisation as busy time over the window across nodes.

import { fromUnits, sum, toUnits } from "./money.js";

export function fleetTotals(report) {
  const nodes = (report && report.nodes) || [];
  const currency = (nodes[0] && nodes[0].currency) || "USD";
  const same = nodes.filter((n) => (n.currency || "USD") === currency);
  const pick = (k) => same.map((n) => n[k]).filter((v) => v !== null && v !== undefined);
  const tokens = same.reduce((a, n) => a + (n.tokens || 0), 0);
  let busy = 0, window = 0;
  for (const n of nodes) {
    const i = n.inputs || {};
    if (typeof i.busy_s === "number" && typeof i.window_s === "number") { busy += i.busy_s; window += i.window_s; }
  }
  const cost = sum(pick("cost"));
  const revenue = sum(pick("revenue"));
  return {
    currency,
    nodes: nodes.length,
    mixedCurrencies: same.length !== nodes.length,
    cost,
    revenue,
    margin: sum(pick("gross_margin")),
    unsold: sum(pick("unsold_capacity")),
    costSold: sum(pick("cost_sold")),
    tokens,
    costPer1M: per1M(cost, tokens),
    utilisation: window ? busy / window : null,
    estimated: nodes.some((n) => n.cost_estimated),
  };
}

// An amount per 1M tokens, exactly (truncated at 6 places).
export function per1M(amount, tokens) {
  if (!tokens) return null;
  return fromUnits((toUnits(amount) * 1000000n) / BigInt(tokens), 6);
}

// margin / revenue as a fraction (display only)
export function marginShare(margin, revenue) {
  const r = Number(revenue);
  return r ? Number(margin) / r : null;
}
