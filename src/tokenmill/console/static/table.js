// Data tables: typed columns (numbers right-aligned, units in the header), click-to-sort,
// an optional totals row, an empty state that says what to do, and an optional filter box.

import { h, clear } from "./dom.js";
import { emptyState } from "./ui.js";

// columns: [{key, label, unit?, num?, value?(row) (for sorting/csv), render?(row) -> node|text,
//            total?: node|text, cls?, testid?(row)}]
export function dataTable(columns, rows, opts = {}) {
  const { empty = { title: "Nothing here yet" }, totals = null, rowTestid = null, sort = null,
          filter = false, filterPlaceholder = "Filter…", onRow = null, dense = false, testid = null,
          rowClass = null, expand = null } = opts;
  let sortKey = sort ? sort.key : null;
  let sortDir = sort ? sort.dir || "desc" : "desc";
  let needle = "";
  const wrap = h("div", { class: "table-wrap", testid });
  const body = h("tbody");
  const head = h("thead");

  const valueOf = (c, r) => (c.value ? c.value(r) : r[c.key]);

  function sorted() {
    let list = rows;
    if (needle) {
      const n = needle.toLowerCase();
      list = list.filter((r) => columns.some((c) => String(valueOf(c, r) ?? "").toLowerCase().includes(n)));
    }
    if (!sortKey) return list;
    const c = columns.find((x) => x.key === sortKey);
    const dir = sortDir === "asc" ? 1 : -1;
    return [...list].sort((a, b) => {
      const va = valueOf(c, a), vb = valueOf(c, b);
      if (va === vb) return 0;
      if (va === null || va === undefined) return 1;
      if (vb === null || vb === undefined) return -1;
      return (typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb), undefined, { numeric: true })) * dir;
    });
  }

  function renderHead() {
    clear(head, h("tr", null, columns.map((c) => {
      const active = sortKey === c.key;
      return h("th", {
        class: [c.num && "num", c.cls, "sortable", active && `sorted-${sortDir}`], scope: "col",
        onclick: () => {
          if (sortKey === c.key) sortDir = sortDir === "asc" ? "desc" : "asc";
          else { sortKey = c.key; sortDir = c.num ? "desc" : "asc"; }
          renderHead(); renderBody();
        },
      }, c.label, c.unit ? h("span", { class: "unit" }, c.unit) : null);
    }), expand ? h("th", { class: "expander" }) : null));
  }

  function cell(c, r) {
    const v = c.render ? c.render(r) : r[c.key];
    const blank = c.label === "" ? "" : h("span", { class: "muted" }, "—"); // an actions column stays empty
    return h("td", { class: [c.num && "num", c.cls], testid: c.testid ? c.testid(r) : null },
      v === null || v === undefined || v === "" ? blank : v);
  }

  function renderBody() {
    const list = sorted();
    const trs = [];
    for (const r of list) {
      const tr = h("tr", { testid: rowTestid ? rowTestid(r) : null, class: [onRow && "clickable", rowClass && rowClass(r)] }, columns.map((c) => cell(c, r)));
      if (onRow) tr.addEventListener("click", (ev) => { if (!ev.target.closest("button, a, input, select")) onRow(r); });
      trs.push(tr);
      if (expand) {
        const detail = h("tr", { class: "detail-row", hidden: true }, h("td", { colspan: String(columns.length + 1) }));
        const toggle = h("button", { type: "button", class: "btn ghost sm expand-btn", "aria-expanded": "false", title: "Details",
          onclick: () => {
            const open = detail.hidden;
            detail.hidden = !open;
            toggle.setAttribute("aria-expanded", open ? "true" : "false");
            tr.classList.toggle("expanded", open);
            if (open && !detail.firstChild.firstChild) detail.firstChild.append(expand(r));
          } }, "▸");
        tr.append(h("td", { class: "expander" }, toggle));
        trs.push(detail);
      }
    }
    clear(body, trs);
    table.hidden = !list.length;
    emptyHost.hidden = !!list.length;
    if (!list.length) clear(emptyHost, needle ? emptyState({ title: "No rows match the filter", text: `Nothing contains “${needle}”.`, compact: true }) : emptyState({ ...empty, compact: true }));
  }

  const foot = totals
    ? h("tfoot", null, h("tr", { class: "totals", testid: "totals-row" }, columns.map((c) =>
        h("td", { class: [c.num && "num", c.cls], testid: totals.testid ? totals.testid(c) : null }, totals.values[c.key] ?? "")), expand ? h("td") : null))
    : null;
  const table = h("table", { class: ["data", dense && "dense"] }, head, body, foot);
  const emptyHost = h("div", { class: "table-empty" });
  if (filter && rows.length > 8) {
    const input = h("input", { type: "search", class: "input filter", placeholder: filterPlaceholder, "aria-label": "Filter rows",
      oninput: () => { needle = input.value.trim(); renderBody(); } });
    wrap.append(h("div", { class: "table-tools" }, input));
  }
  wrap.append(h("div", { class: "table-scroll" }, table), emptyHost);
  renderHead();
  renderBody();
  return wrap;
}

// The rows as CSV, in the columns' order, with their raw values (not the formatted ones).
export function tableCsvRows(columns, rows) {
  return [columns.map((c) => (c.unit ? `${c.label} (${c.unit})` : c.label)),
    ...rows.map((r) => columns.map((c) => (c.value ? c.value(r) : r[c.key])))];
}
