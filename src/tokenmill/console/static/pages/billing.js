// Billing: invoices (PDF, CSV, lines; close a month), the price book, budgets and prepaid
// credits, volume discounts. One tab each, shown when the session may read it.

import { get, maybe } from "../api.js";
import { tabs } from "../ui.js";
import { invoicesTab } from "./billing/invoices.js";
import { pricesTab } from "./billing/prices.js";
import { budgetsTab } from "./billing/budgets.js";
import { discountsTab } from "./billing/discounts.js";

const TABS = [
  { id: "invoices", label: "Invoices", perm: "invoices:read" },
  { id: "prices", label: "Price book", perm: "prices:read" },
  { id: "budgets", label: "Budgets & credits", perm: "budgets:read" },
  { id: "discounts", label: "Volume discounts", perm: "prices:read" },
];

export async function render(ctx) {
  const shown = TABS.filter((t) => ctx.can(t.perm));
  const active = shown.find((t) => t.id === ctx.params.get("tab")) || shown[0];
  const [invoices, prices, budgets, discounts, tenants] = await Promise.all([
    ctx.can("invoices:read") ? get("/admin/invoices") : null,
    ctx.can("prices:read") ? get("/admin/prices") : null,
    ctx.can("budgets:read") ? get("/admin/budgets") : null,
    ctx.can("prices:read") ? maybe("/admin/discounts") : null,
    ctx.can("tenants:read") ? maybe("/admin/tenants") : null,
  ]);
  const data = {
    invoices: invoices && invoices.data,
    prices: prices && prices.data,
    budgets: budgets && budgets.data,
    discounts: discounts && discounts.data,
    tenantNames: tenants ? tenants.data.map((t) => t.name).filter((n) => n !== "system") : [ctx.session.tenant],
  };
  const counts = {
    invoices: data.invoices && data.invoices.length,
    prices: data.prices && new Set(data.prices.map((r) => `${r.model}|${r.tenant}`)).size,
    budgets: data.budgets && data.budgets.length,
    discounts: data.discounts && data.discounts.length,
  };
  const bar = tabs(shown.map((t) => ({ ...t, count: counts[t.id] ?? null })), active.id, (id) => ctx.setParams({ tab: id }));
  const body = {
    invoices: () => invoicesTab(ctx, data),
    prices: () => pricesTab(ctx, data),
    budgets: () => budgetsTab(ctx, data),
    discounts: () => discountsTab(ctx, data),
  }[active.id]();
  ctx.mount(bar, await body);
}
