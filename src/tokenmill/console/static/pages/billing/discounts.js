// Volume discounts: a percentage off a month's usage once its billed tokens pass a threshold,
// for every tenant or one; applied when the month is invoiced.

import { post } from "../../api.js";
import { h } from "../../dom.js";
import { compact, int } from "../../format.js";
import { button, card, toast } from "../../ui.js";
import { dataTable } from "../../table.js";
import { formDialog } from "../../dialog.js";

export function discountsTab(ctx, data) {
  const write = ctx.can("prices:write");
  const table = dataTable([
    { key: "tenant", label: "Applies to", value: (t) => t.tenant || "", render: (t) => (t.tenant ? h("span", { class: "cell-main" }, t.tenant) : h("span", { class: "muted" }, "every tenant without its own tiers")) },
    { key: "min_tokens", label: "From", unit: "tokens / month", num: true, render: (t) => h("span", { title: int(t.min_tokens) }, compact(t.min_tokens)) },
    { key: "percent", label: "Discount", num: true, value: (t) => Number(t.percent), render: (t) => h("strong", null, `${t.percent}%`) },
  ], data.discounts || [], {
    testid: "discounts", sort: { key: "min_tokens", dir: "asc" },
    empty: { title: "No volume discounts", text: "Add tiers such as 5% off past 1B tokens a month; the invoice shows the discount as its own line.", iconName: "billing" },
  });
  return card("Volume discounts", {
    subtitle: "The highest tier a month's billed tokens reach applies to that month's usage",
    cls: "flush",
    actions: write ? [button("Add tier", () => addTier(ctx, data), { kind: "primary", size: "sm", iconName: "plus", testid: "discount-create" })] : [],
  }, table);
}

function addTier(ctx, data) {
  formDialog({
    title: "Add a discount tier",
    testid: "discount-new",
    fields: [
      { name: "tenant", label: "Tenant", type: "select", options: [["", "every tenant"], ...data.tenantNames.map((t) => [t, t])], value: "" },
      { name: "min_tokens", label: "From", unit: "billed tokens in the month", type: "number", min: 0, required: true, placeholder: "1000000000" },
      { name: "percent", label: "Discount", unit: "%", required: true, placeholder: "5", pattern: "\\d{1,2}(\\.\\d{1,4})?" },
    ],
    submitLabel: "Add tier",
    onSubmit: async (v) => {
      await post("/admin/discounts", { tenant: v.tenant || null, min_tokens: Number(v.min_tokens), percent: v.percent });
      toast("Discount tier added");
      ctx.refresh();
    },
  });
}
