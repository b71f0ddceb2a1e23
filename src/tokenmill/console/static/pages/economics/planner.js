// The capacity planner: for a model and a workload, which accelerators serve it within the
// latency targets, how many, at what cost per 1M tokens, power and payback; and why the others
// are out. GET /admin/plan (the same plan as `tokenmill plan --json`).

import { get } from "../../api.js";
import { h, clear } from "../../dom.js";
import { dec, int } from "../../format.js";
import { money } from "../../money.js";
import { badge, button, card, emptyState, errorBox, loading, notice } from "../../ui.js";
import { dataTable } from "../../table.js";
import { field } from "../../dialog.js";

const MODELS = ["llama-3.1-8b", "llama-3.1-70b", "qwen3-8b", "qwen2.5-7b", "mixtral-8x7b", "deepseek-v3", "smollm2-135m"];

export function plannerCard(ctx) {
  const fields = [
    { name: "model", label: "Model", type: "select", options: MODELS, value: "llama-3.1-8b", required: true },
    { name: "rate", label: "Demand", unit: "requests/s", type: "number", min: 0, step: "any", value: 5, required: true },
    { name: "input_tokens", label: "Prompt", unit: "tokens/request", type: "number", min: 1, value: 1000 },
    { name: "output_tokens", label: "Output", unit: "tokens/request", type: "number", min: 1, value: 200 },
    { name: "ttft_ms", label: "TTFT target", unit: "ms", type: "number", min: 1, value: 2000 },
    { name: "tpot_ms", label: "Per-token target", unit: "ms", type: "number", min: 1, value: 100 },
    { name: "price", label: "Your price", unit: "USD / 1M tokens", placeholder: "0.30" },
    { name: "acquire", label: "Hardware", type: "select", options: [["rented", "rented (per hour)"], ["owned", "owned (purchase + power)"]], value: "rented" },
  ];
  const result = h("div", { testid: "plan-result" });
  const form = h("form", { class: "planner-form" }, h("div", { class: "planner-grid" }, fields.map(field)),
    h("div", { class: "btn-row" }, button("Plan", null, { kind: "primary", type: "submit", testid: "plan-submit" })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = {};
    for (const f of fields) {
      const v = form.elements.namedItem(f.name).value.trim();
      if (v) q[f.name] = v;
    }
    clear(result, loading("Ranking the catalog's accelerators…"));
    try {
      const plan = await get("/admin/plan", q);
      clear(result, planView(plan));
    } catch (e) {
      if (e.status === 404) {
        clear(result, emptyState({ title: "The planner is not served by this server yet", iconName: "economics",
          text: `Run it from a shell: tokenmill plan --model ${q.model} --rate ${q.rate || 1}${q.price ? ` --price ${q.price}` : ""} --input-tokens ${q.input_tokens || 1000} --output-tokens ${q.output_tokens || 200}` }));
      } else clear(result, errorBox(e));
    }
  });
  clear(result, h("p", { class: "muted" }, "Describe a workload and press Plan: each accelerator in the hardware catalog is sized by a roofline model for your latency targets."));
  return card("Capacity plan", { subtitle: "Which hardware serves a workload, at what cost per token", testid: "planner" }, h("div", { class: "stack" }, form, result));
}

function planView(plan) {
  const best = (plan.options || [])[0];
  const head = best
    ? notice("ok", `Best: ${best.accelerators}× ${best.name} — ${money(best.usd_per_million_tokens, "USD")} per 1M tokens`,
        `${int(best.replicas)} replica(s) of ${best.layout || `TP${best.tensor_parallel}`}, ${dec(best.output_tokens_per_s, 0)} output tokens/s, TTFT ${dec(best.ttft_ms, 0)} ms, ${dec(best.all_in_kw, 2)} kW all-in${best.monthly_margin_usd ? `, ${money(best.monthly_margin_usd, "USD", { cents: true })} margin a month` : ""}.`)
    : notice("warn", "Nothing in the catalog meets these targets", "Relax the latency targets, lower the demand, or choose a smaller model.");
  const d = plan.demand || {};
  const options = dataTable([
    { key: "rank", label: "#", num: true },
    { key: "name", label: "Accelerator", render: (o) => h("div", null, h("div", { class: "cell-main" }, o.name), h("div", { class: "cell-sub" }, `${o.compute_precision}${o.estimated && o.estimated.length ? " · estimated: " + o.estimated.join(", ") : ""}`)) },
    { key: "accelerators", label: "Accelerators", num: true, render: (o) => h("div", null, `${o.accelerators}`, h("div", { class: "cell-sub" }, `${o.layout || `TP${o.tensor_parallel}`} × ${o.replicas} · ${o.nodes} node${o.nodes === 1 ? "" : "s"}`)) },
    { key: "output_tokens_per_s", label: "Output", unit: "tok/s", num: true, render: (o) => int(o.output_tokens_per_s) },
    { key: "ttft_ms", label: "TTFT · per token", unit: "ms", num: true, render: (o) => `${int(o.ttft_ms)} · ${dec(o.tpot_ms, 1)}` },
    { key: "usd_per_hour", label: "Cost", unit: "per hour", num: true, value: (o) => Number(o.usd_per_hour), render: (o) => money(o.usd_per_hour, "USD", { cents: true }) },
    { key: "usd_per_million_tokens", label: "Cost / 1M", num: true, value: (o) => Number(o.usd_per_million_tokens), render: (o) => h("div", null, h("strong", null, money(o.usd_per_million_tokens, "USD")),
      h("div", { class: "cell-sub" }, `${money(o.usd_per_million_tokens_at_capacity, "USD")} at capacity`)) },
    { key: "all_in_kw", label: "Power", unit: "kW", num: true, render: (o) => dec(o.all_in_kw, 2) },
    { key: "monthly_margin_usd", label: "Margin", unit: "per month", num: true, value: (o) => Number(o.monthly_margin_usd), render: (o) => (o.monthly_margin_usd ? money(o.monthly_margin_usd, "USD", { cents: true }) : "—") },
    { key: "payback_months", label: "Payback", num: true, value: (o) => Number(o.payback_months), render: (o) => (o.payback_months ? `${o.payback_months} mo` : "—") },
  ], plan.options || [], { dense: true, testid: "plan-options", empty: { title: "No option fits" } });
  const excluded = (plan.excluded || []).length ? dataTable([
    { key: "accelerator", label: "Accelerator" },
    { key: "kind", label: "Why out", render: (e) => badge(e.kind, "muted") },
    { key: "reason", label: "Detail", cls: "wrap" },
  ], plan.excluded, { dense: true, testid: "plan-excluded" }) : null;
  return h("div", { class: "stack" }, head,
    h("div", { class: "cell-sub" }, `${plan.model.name}, ${plan.model.precision}, ${dec(plan.model.weights_gb, 1)} GB of weights · ${dec(d.requests_per_s, 2)} req/s, ${int(d.tokens_per_s)} tokens/s · ${plan.site.facility}, PUE ${plan.site.pue}, ${plan.acquire}`),
    options, excluded ? [h("div", { class: "section-title" }, "Ruled out"), excluded] : null);
}
