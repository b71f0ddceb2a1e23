// The price book: what each model costs per 1M tokens (input, cached input, output), the
// general list and tenants' contract prices, with changes to come and the history. Rules never
// change; a new rule supersedes from its start.

import { post } from "../../api.js";
import { h } from "../../dom.js";
import { date, dateTime, fromLocalInput, relative, unix } from "../../format.js";
import { money } from "../../money.js";
import { badge, button, card, toast } from "../../ui.js";
import { dataTable } from "../../table.js";
import { formDialog } from "../../dialog.js";

const CLASSES = ["input", "cached_input", "output"];

// Each rule's status: "in force" (the latest started for its model, class, tenant and
// currency), "scheduled" (starts later) or "superseded".
export function ruleStatuses(rules, now = Date.now() / 1000) {
  const current = new Map();
  for (const r of rules) {
    const t = unix(r.effective_from);
    if (t > now) continue;
    const k = `${r.model}|${r.token_class}|${r.tenant}|${r.currency}`;
    const best = current.get(k);
    if (!best || t > unix(best.effective_from) || (t === unix(best.effective_from) && r.version > best.version)) current.set(k, r);
  }
  const inForce = new Set([...current.values()].map((r) => r.id));
  return new Map(rules.map((r) => [r.id, inForce.has(r.id) ? "in force" : unix(r.effective_from) > now ? "scheduled" : "superseded"]));
}

export function pricesTab(ctx, data) {
  const rules = data.prices || [];
  const status = ruleStatuses(rules);
  const write = ctx.can("prices:write");
  // One row per model, tenant and currency: its three prices now.
  const rows = new Map();
  for (const r of rules.filter((x) => status.get(x.id) === "in force")) {
    const k = `${r.model}|${r.tenant}|${r.currency}`;
    const row = rows.get(k) || { model: r.model, tenant: r.tenant, currency: r.currency, from: r.effective_from, sources: new Set() };
    row[r.token_class] = r.price_per_1m;
    if (unix(r.effective_from) > unix(row.from)) row.from = r.effective_from;
    row.sources.add(r.source);
    rows.set(k, row);
  }
  const list = [...rows.values()].sort((a, b) => (a.model === "*") - (b.model === "*") || a.model.localeCompare(b.model) || (a.tenant ?? "").localeCompare(b.tenant ?? ""));
  const priceCell = (c) => ({ key: c, label: { input: "Input", cached_input: "Cached input", output: "Output" }[c], unit: "per 1M", num: true,
    value: (r) => (r[c] === undefined ? null : Number(r[c])),
    render: (r) => (r[c] === undefined ? h("span", { class: "muted", title: "falls back to the model's general price or the * rule" }, "inherited") : money(r[c], r.currency)) });
  const current = dataTable([
    { key: "model", label: "Model", render: (r) => (r.model === "*" ? h("div", null, h("div", { class: "cell-main" }, "Any other model"), h("div", { class: "cell-sub" }, "the * rule")) : h("span", { class: "cell-main" }, r.model)) },
    { key: "tenant", label: "Applies to", value: (r) => r.tenant || "", render: (r) => (r.tenant ? badge(`contract: ${r.tenant}`, "info") : h("span", { class: "muted" }, "every tenant")) },
    ...CLASSES.map(priceCell),
    { key: "from", label: "Since", render: (r) => date(r.from) },
    { key: "sources", label: "Source", cls: "wrap", value: (r) => [...r.sources].join("; "), render: (r) => h("span", { class: "cell-sub" }, [...r.sources].join("; ")) },
  ], list, { testid: "prices", dense: false, sort: null,
    empty: { title: "No prices set", text: "Until a model has a price its usage is metered but not billed. Add a price, or a * rule for every model without one.", iconName: "billing" } });

  const changes = rules.filter((r) => status.get(r.id) !== "in force").sort((a, b) => unix(b.effective_from) - unix(a.effective_from));
  const history = dataTable([
    { key: "effective_from", label: "Starts", value: (r) => unix(r.effective_from), render: (r) => h("div", null, `${dateTime(r.effective_from)} UTC`, h("div", { class: "cell-sub" }, relative(r.effective_from))) },
    { key: "status", label: "Status", value: (r) => status.get(r.id), render: (r) => badge(status.get(r.id)) },
    { key: "model", label: "Model", render: (r) => (r.model === "*" ? "any other" : r.model) },
    { key: "tenant", label: "Applies to", value: (r) => r.tenant || "", render: (r) => r.tenant || h("span", { class: "muted" }, "every tenant") },
    { key: "token_class", label: "Tokens", render: (r) => r.token_class.replace("_", " ") },
    { key: "price_per_1m", label: "Price", unit: "per 1M", num: true, value: (r) => Number(r.price_per_1m), render: (r) => money(r.price_per_1m, r.currency) },
    { key: "book", label: "Book", render: (r) => `${r.book} v${r.version}` },
    { key: "source", label: "Source", cls: "wrap" },
  ], changes, { dense: true, filter: true, testid: "price-history", empty: { title: "No scheduled or earlier prices" } });

  return h("div", { class: "stack" },
    card("Prices in force", {
      subtitle: "Per 1M tokens. A tenant's contract price wins over the general one; a model's own price wins over the * rule",
      cls: "flush",
      actions: write ? [button("Add prices", () => addPrices(ctx, data), { kind: "primary", size: "sm", iconName: "plus", testid: "price-create" })] : [],
    }, current),
    card("Scheduled and earlier prices", { subtitle: "A new rule supersedes the old from its start; usage is always priced by the rule in force when it happened", cls: "flush" }, history));
}

function addPrices(ctx, data) {
  const platform = ctx.session.tenant === "system";
  formDialog({
    title: "Add prices",
    intro: "New rules take effect from their start (now, or later); they never change the price of usage already metered.",
    testid: "price-new",
    submitTestid: "price-create-submit",
    wide: true,
    fields: [
      { name: "model", label: "Model", required: true, placeholder: "llama-3.1-8b, or * for every model without its own" },
      { name: "tenant", label: "Contract for tenant", type: "select", options: [["", "every tenant (list price)"], ...data.tenantNames.map((t) => [t, t])], value: "", disabled: !platform },
      { name: "input", label: "Input", unit: "per 1M tokens", placeholder: "0.15", pattern: "\\d{1,9}(\\.\\d{1,6})?" },
      { name: "cached_input", label: "Cached input", unit: "per 1M tokens", placeholder: "0.03", pattern: "\\d{1,9}(\\.\\d{1,6})?" },
      { name: "output", label: "Output", unit: "per 1M tokens", placeholder: "0.60", pattern: "\\d{1,9}(\\.\\d{1,6})?" },
      { name: "currency", label: "Currency", value: "USD", required: true, pattern: "[A-Z]{3}" },
      { name: "effective_from", label: "Starts", type: "datetime", unit: "UTC", help: "Empty: now." },
      { name: "source", label: "Source", required: true, placeholder: "price list 2026-12", help: "Where the figure comes from (kept with the rule)." },
    ],
    submitLabel: "Add prices",
    onSubmit: async (v) => {
      const body = { model: v.model, currency: v.currency, source: v.source };
      for (const c of CLASSES) if (v[c]) body[c] = v[c];
      if (!CLASSES.some((c) => body[c])) throw new Error("Give at least one of input, cached input, output.");
      if (v.tenant) body.tenant = v.tenant;
      if (v.effective_from) body.effective_from = new Date(fromLocalInput(v.effective_from) * 1000).toISOString();
      await post("/admin/prices", body);
      toast(`Prices for ${v.model} added`);
      ctx.refresh();
    },
  });
}
