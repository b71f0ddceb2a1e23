// What-if: the range's economics projected to a 30-day month at another utilisation and price.
// A projection (Number arithmetic, labelled as such), never a ledger figure.

import { h, clear } from "../../dom.js";
import { pct } from "../../format.js";
import { moneyShort } from "../../money.js";
import { card, kv } from "../../ui.js";

export function whatIfCard(f, range) {
  const month = 30 * 86400;
  const scale = month / Math.max(1, range.seconds);
  const baseRevenue = Number(f.revenue) * scale;
  const baseCost = Number(f.cost) * scale;
  const baseUtil = f.utilisation || 0;
  const util = h("input", { type: "range", min: "5", max: "100", step: "5", value: String(Math.round((baseUtil || 0.5) * 100 / 5) * 5 || 50), testid: "whatif-utilisation", "aria-label": "Utilisation" });
  const price = h("input", { type: "range", min: "-50", max: "100", step: "5", value: "0", testid: "whatif-price", "aria-label": "Price change" });
  const out = h("div", { testid: "whatif-result" });
  const utilLabel = h("strong");
  const priceLabel = h("strong");

  function update() {
    const u = Number(util.value) / 100;
    const p = Number(price.value) / 100;
    utilLabel.textContent = pct(u, 0);
    priceLabel.textContent = `${p >= 0 ? "+" : ""}${pct(p, 0)}`;
    if (baseUtil < 0.01 || !baseCost || !baseRevenue) {
      clear(out, h("p", { class: "muted" }, "Needs a range with costed, busy nodes to project from."));
      return;
    }
    const revenue = baseRevenue * (u / baseUtil) * (1 + p); // as many more tokens as busy time, each priced p higher
    const margin = revenue - baseCost; // the fleet costs the same whether busy or idle
    clear(out, kv([
      ["Revenue / month", moneyShort(revenue, f.currency)],
      ["Cost / month", moneyShort(baseCost, f.currency)],
      ["Gross margin / month", h("span", { class: margin < 0 ? "bad-text" : "ok-text" }, `${moneyShort(margin, f.currency)} (${revenue ? pct(margin / revenue, 0) : "—"})`)],
      ["Break-even utilisation", baseRevenue ? pct(Math.min(9.99, baseCost / (baseRevenue / baseUtil) / (1 + p)), 0) : "—"],
    ]));
  }
  util.addEventListener("input", update);
  price.addEventListener("input", update);
  update();
  return card("What if", { subtitle: `This range (${pct(baseUtil, 0)} busy) projected to a 30-day month`, testid: "whatif" },
    h("div", { class: "stack" },
      h("div", { class: "field" }, h("label", null, "Utilisation ", utilLabel), util),
      h("div", { class: "field" }, h("label", null, "Price change ", priceLabel), price),
      out,
      h("div", { class: "help" }, "A projection: revenue scales with busy time and price, cost stays fixed. The ledger's figures are in the tables.")));
}
