// Invoices: one per tenant, month and currency, sealed when issued; PDF and CSV downloads,
// the lines on screen, and closing a month.

import { get, post, url } from "../../api.js";
import { h } from "../../dom.js";
import { date, int, month } from "../../format.js";
import { money, sumByCurrency, moneyMap } from "../../money.js";
import { button, card, kpi, kpiRow, kv, linkButton, toast } from "../../ui.js";
import { dataTable } from "../../table.js";
import { formDialog, infoDialog } from "../../dialog.js";

export function invoicesTab(ctx, data) {
  const list = data.invoices || [];
  const write = ctx.can("invoices:write");
  const latest = list.reduce((a, i) => (i.period_start > a ? i.period_start : a), "");
  const latestList = list.filter((i) => i.period_start === latest);
  const billedLatest = sumByCurrency(latestList.map((i) => ({ [i.currency]: i.total })));
  const billedAll = sumByCurrency(list.map((i) => ({ [i.currency]: i.total })));

  const table = dataTable([
    { key: "number", label: "Invoice", render: (i) => h("span", { class: "mono cell-main" }, i.number) },
    { key: "tenant", label: "Tenant" },
    { key: "period_start", label: "Period", render: (i) => month(i.period_start) },
    { key: "issued_at", label: "Issued", render: (i) => date(i.issued_at) },
    { key: "subtotal", label: "Subtotal", num: true, value: (i) => Number(i.subtotal), render: (i) => money(i.subtotal, i.currency) },
    { key: "tax", label: "Tax", num: true, value: (i) => Number(i.tax), render: (i) => money(i.tax, i.currency) },
    { key: "total", label: "Total", num: true, value: (i) => Number(i.total), render: (i) => h("strong", null, money(i.total, i.currency)) },
    { key: "actions", label: "", value: () => "", render: (i) => h("div", { class: "btn-row nowrap" },
      linkButton("PDF", url(`/admin/invoices/${encodeURIComponent(i.id)}`, { format: "pdf" }), { size: "sm", iconName: "download", testid: `invoice-pdf-${i.id}`, download: `${i.number}.pdf` }),
      linkButton("CSV", url(`/admin/invoices/${encodeURIComponent(i.id)}`, { format: "csv" }), { size: "sm", kind: "ghost", testid: `invoice-csv-${i.id}`, download: `${i.number}.csv` }),
      button("Lines", () => showLines(i), { size: "sm", kind: "ghost", testid: `invoice-lines-${i.id}` })) },
  ], list, {
    testid: "invoices", rowTestid: (i) => `invoice-${i.id}`, filter: true, sort: { key: "period_start", dir: "desc" },
    empty: { title: "No invoices yet", iconName: "billing",
      text: "An invoice is issued when a month is closed, after the month has ended and its late-usage grace has passed. " + (write ? "Close a month with the button above, or `tokenmill invoices close`." : "A platform admin closes each month."),
      action: write ? button("Close a month", () => closeDialog(ctx, data), { kind: "primary" }) : null },
  });
  return h("div", { class: "stack" },
    list.length ? kpiRow([
      kpi({ id: "invoices-count", label: "Invoices", value: int(list.length), raw: list.length, sub: `${new Set(list.map((i) => i.tenant)).size} tenants` }),
      kpi({ id: "billed-latest", label: `Billed · ${month(latest)}`, value: moneyMap(billedLatest), raw: JSON.stringify(billedLatest), sub: `${latestList.length} invoices, tax included` }),
      kpi({ id: "billed-all", label: "Billed · all periods", value: moneyMap(billedAll), raw: JSON.stringify(billedAll), sub: `since ${month(list.reduce((a, i) => (!a || i.period_start < a ? i.period_start : a), ""))}` }),
    ]) : null,
    card("Invoices", {
      subtitle: "Sealed when issued: an invoice never changes; late usage goes on the next one as an adjustment",
      cls: "flush",
      actions: write ? [button("Close a month", () => closeDialog(ctx, data), { kind: "primary", size: "sm", testid: "invoice-close" })] : [],
    }, table));
}

async function showLines(summary) {
  let inv;
  try {
    inv = await get(`/admin/invoices/${encodeURIComponent(summary.id)}`);
  } catch (e) { toast(e.message, "bad"); return; }
  const lines = dataTable([
    { key: "kind", label: "Kind" },
    { key: "description", label: "Description", cls: "wrap" },
    { key: "tokens", label: "Tokens", num: true, render: (l) => int(l.tokens) },
    { key: "unit_price", label: "Unit price", num: true, render: (l) => (l.unit === "per 1M tokens" ? `${money(l.unit_price, inv.currency)} / 1M` : `${l.unit_price} ${l.unit}`) },
    { key: "amount", label: "Amount", num: true, value: (l) => Number(l.amount), render: (l) => money(l.amount, inv.currency) },
  ], inv.lines || [], { dense: true, empty: { title: "No lines" },
    totals: { values: { kind: "Subtotal", amount: money(inv.subtotal, inv.currency) } } });
  infoDialog(`${inv.number}`, h("div", { class: "stack" },
    kv([["Tenant", inv.tenant], ["Period", `${date(inv.period_start)} – ${date(inv.period_end)} (UTC)`], ["Issued", date(inv.issued_at)],
      ["Tax", `${money(inv.tax, inv.currency)} (rate ${inv.tax_rate ?? "—"})`], ["Total", h("strong", null, money(inv.total, inv.currency))]]),
    lines,
    h("div", { class: "btn-row" }, linkButton("Download PDF", url(`/admin/invoices/${encodeURIComponent(inv.id)}`, { format: "pdf" }), { iconName: "download", kind: "primary", download: `${inv.number}.pdf` }))),
    "invoice-detail");
}

function previousMonth(now = new Date()) {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}

function closeDialog(ctx, data) {
  formDialog({
    title: "Close a month",
    intro: "Issues the tenant's invoices for the month (one per currency) from the ledger as priced. A month closes once it is over and its late-usage grace has passed, and only after every earlier month with usage.",
    testid: "invoice-close",
    submitTestid: "invoice-close-submit",
    fields: [
      { name: "tenant", label: "Tenant", type: "select", options: data.tenantNames, required: true },
      { name: "period", label: "Month", placeholder: "YYYY-MM", value: previousMonth(), required: true, pattern: "\\d{4}-\\d{2}" },
      { name: "tax_rate", label: "Tax rate", placeholder: "0.08", help: "A fraction (0.08 = 8%); empty: the server's default." },
    ],
    submitLabel: "Issue invoices",
    onSubmit: async (v) => {
      const body = { tenant: v.tenant, period: v.period };
      if (v.tax_rate) body.tax_rate = v.tax_rate;
      const out = await post("/admin/invoices/close", body);
      toast(out.data && out.data.length ? `${out.data.length} invoice(s) issued for ${v.tenant}` : `Nothing to invoice for ${v.tenant} in ${v.period}`);
      ctx.refresh();
    },
  });
}
