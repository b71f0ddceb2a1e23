// Budgets and credits: hard money limits on a tenant, key or agent per day, month or in
// total (reservations keep concurrent requests inside them), and prepaid credit.

import { del, maybe, post } from "../../api.js";
import { h } from "../../dom.js";
import { pct } from "../../format.js";
import { money, ratio, sub, isNegative } from "../../money.js";
import { badge, button, card, meter, toast } from "../../ui.js";
import { dataTable } from "../../table.js";
import { confirmDialog, formDialog } from "../../dialog.js";

export async function budgetsTab(ctx, data) {
  const list = data.budgets || [];
  const write = ctx.can("budgets:write");
  const [keys, agents] = await Promise.all([
    ctx.can("keys:read") ? maybe("/admin/keys") : null,
    ctx.can("agents:read") ? maybe("/admin/agents") : null,
  ]);
  const names = new Map([...((keys && keys.data) || []).map((k) => [`key:${k.id}`, `${k.name} (${k.tenant})`]),
    ...((agents && agents.data) || []).map((a) => [`agent:${a.id}`, `${a.name} (${a.tenant})`])]);
  const isCredit = (b) => String(b.id).startsWith("credit:");
  const state = (b) => {
    const used = ratio(b.used, b.limit) ?? 0;
    if (used >= 1) return "exhausted";
    if (used * 100 >= b.soft_pct) return "over alert";
    return "ok";
  };
  const table = dataTable([
    { key: "holder", label: "Holder", render: (b) => {
      const [kind, id] = b.holder.split(":");
      return h("div", null, h("div", { class: "cell-main" }, kind === "tenant" ? id : names.get(b.holder) || id),
        h("div", { class: "cell-sub" }, isCredit(b) ? "prepaid credit" : `${kind} budget`));
    } },
    { key: "period", label: "Period", render: (b) => (b.period === "total" ? "in total" : `per ${b.period}`) },
    { key: "limit", label: "Limit", num: true, value: (b) => Number(b.limit), render: (b) => money(b.limit, b.currency, { cents: true }) },
    { key: "used", label: "Spent", num: true, value: (b) => Number(b.used), render: (b) => money(b.used, b.currency, { cents: true }) },
    { key: "left", label: "Left", num: true, value: (b) => Number(b.limit) - Number(b.used), render: (b) => {
      const left = sub(b.limit, b.used);
      return isNegative(left) ? h("span", { class: "bad-text" }, money(left, b.currency, { cents: true })) : money(left, b.currency, { cents: true });
    } },
    { key: "share", label: "Used", value: (b) => ratio(b.used, b.limit), render: (b) => meter(ratio(b.used, b.limit), { label: pct(ratio(b.used, b.limit), 0), warnAt: b.soft_pct / 100, badAt: 1, mark: b.soft_pct / 100 }) },
    { key: "soft_pct", label: "Alert at", num: true, render: (b) => `${b.soft_pct}%` },
    { key: "state", label: "State", value: state, render: (b) => badge(state(b), state(b) === "exhausted" ? "bad" : state(b) === "over alert" ? "warn" : "ok", `budget-state-${b.id}`) },
    write ? { key: "actions", label: "", value: () => "", render: (b) => (isCredit(b) ? null : button("Retire", () => retire(ctx, b), { size: "sm", kind: "danger", testid: `budget-retire-${b.id}` })) } : null,
  ].filter(Boolean), list, {
    testid: "budgets", rowTestid: (b) => `budget-${b.id}`, filter: true,
    empty: { title: "No budgets or credits", text: "Set a monthly money limit on a tenant, a key or an agent; requests past it are refused (402) before they reach a model. Prepaid tenants get credit instead.", iconName: "billing",
      action: write ? button("New budget", () => createBudget(ctx, data), { kind: "primary", iconName: "plus" }) : null },
  });
  return card("Budgets & credits", {
    subtitle: "Money limits in force; the marker shows where the alert fires",
    cls: "flush",
    actions: write ? [
      button("Grant credit", () => grantCredit(ctx, data), { size: "sm", testid: "credit-grant" }),
      button("New budget", () => createBudget(ctx, data), { kind: "primary", size: "sm", iconName: "plus", testid: "budget-create" }),
    ] : [],
  }, table);
}

async function retire(ctx, b) {
  const ok = await confirmDialog({ title: "Retire this budget?", text: `${b.holder} is no longer limited by it. Spending so far stays recorded.`, confirmLabel: "Retire budget", danger: true });
  if (!ok) return;
  try {
    await del(`/admin/budgets/${encodeURIComponent(b.id)}`);
    toast("Budget retired");
    ctx.refresh();
  } catch (e) { toast(e.message, "bad"); }
}

function createBudget(ctx, data) {
  formDialog({
    title: "New budget",
    intro: "A hard limit: requests that would pass it are refused before they reach a model; an alert fires at the share you choose.",
    testid: "budget-new",
    submitTestid: "budget-create-submit",
    fields: [
      { name: "kind", label: "Holder kind", type: "select", options: [["tenant", "tenant"], ["key", "key (id)"], ["agent", "agent (id)"]], value: "tenant", required: true },
      { name: "holder", label: "Holder", required: true, placeholder: data.tenantNames[0] || "acme", help: "A tenant name, or a key_… / agt_… id." },
      { name: "limit", label: "Limit", required: true, placeholder: "500.00", pattern: "\\d{1,12}(\\.\\d{1,6})?" },
      { name: "currency", label: "Currency", value: "USD", required: true, pattern: "[A-Z]{3}" },
      { name: "period", label: "Period", type: "select", options: [["month", "per month"], ["day", "per day"], ["total", "in total"]], value: "month" },
      { name: "soft_pct", label: "Alert at", unit: "% of the limit", type: "number", min: 1, max: 100, value: 80 },
    ],
    submitLabel: "Create budget",
    onSubmit: async (v) => {
      await post("/admin/budgets", { holder: `${v.kind}:${v.holder}`, limit: v.limit, currency: v.currency, period: v.period, soft_pct: Number(v.soft_pct || 80) });
      toast(`Budget for ${v.holder} created`);
      ctx.refresh();
    },
  });
}

function grantCredit(ctx, data) {
  formDialog({
    title: "Grant prepaid credit",
    intro: "A tenant with credit spends at most what it was granted, in total; grants add up.",
    testid: "credit-new",
    submitTestid: "credit-grant-submit",
    fields: [
      { name: "tenant", label: "Tenant", type: "select", options: data.tenantNames, required: true },
      { name: "amount", label: "Amount", required: true, placeholder: "100.00", pattern: "\\d{1,12}(\\.\\d{1,6})?" },
      { name: "currency", label: "Currency", value: "USD", required: true, pattern: "[A-Z]{3}" },
      { name: "note", label: "Note", placeholder: "PO 4711", wide: true },
    ],
    submitLabel: "Grant credit",
    onSubmit: async (v) => {
      await post("/admin/credits", { tenant: v.tenant, amount: v.amount, currency: v.currency, note: v.note });
      toast(`${money(v.amount, v.currency)} credit granted to ${v.tenant}`);
      ctx.refresh();
    },
  });
}
