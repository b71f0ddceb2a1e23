// Audit: the hash-chained audit log (newest first, paged), whether the chain, its signed head,
// the invoice seals and the immutability triggers verify, and the compliance doctor's findings.

import { get, maybe } from "../api.js";
import { h } from "../dom.js";
import { dateTime, int, plural } from "../format.js";
import { badge, button, card, notice } from "../ui.js";
import { dataTable } from "../table.js";

const PAGE = 50;

// The newest PAGE records ending at `to` (inclusive), or the latest ones when `to` is null.
async function page(to, total) {
  if (to !== null) {
    const after = Math.max(0, to - PAGE);
    const out = await get("/admin/audit", { after, limit: PAGE });
    return out.data.filter((r) => r.seq <= to);
  }
  let after = Math.max(0, (total || 0) - PAGE);
  let rows = [];
  for (let i = 0; i < 20; i++) { // the log may have grown since it was verified
    const out = await get("/admin/audit", { after, limit: 1000 });
    rows = [...rows, ...out.data].slice(-PAGE);
    if (out.data.length < 1000) break;
    after = out.data[out.data.length - 1].seq;
  }
  return rows;
}

function detailText(detail) {
  if (!detail || typeof detail !== "object") return "";
  return Object.entries(detail).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("  ");
}

export async function render(ctx) {
  const to = ctx.params.get("to") ? Number(ctx.params.get("to")) : null;
  const [verify, doctor] = await Promise.all([
    get("/admin/audit/verify"),
    ctx.can("config:read") ? maybe("/admin/doctor") : null,
  ]);
  const rows = (await page(to, verify.checked)).reverse();
  const newest = rows.length ? rows[0].seq : 0;
  const oldest = rows.length ? rows[rows.length - 1].seq : 0;

  const status = verify.ok
    ? notice("ok", `Audit chain intact: ${plural(verify.checked, "record")} verified`,
        "Every record's hash links to the one before; the signed head, checkpoints, invoice seals and immutability triggers check out.")
    : notice("bad", verify.first_bad_seq ? `Audit chain broken at record #${verify.first_bad_seq}` : "Integrity check failed",
        verify.reason || "A record, a seal or a trigger does not verify.",
        verify.problems && verify.problems.length ? h("ul", { class: "notes" }, verify.problems.map((p) => h("li", null, p))) : null);
  status.setAttribute("data-testid", "audit-chain-status");
  status.dataset.ok = String(!!verify.ok);

  const table = dataTable([
    { key: "seq", label: "#", num: true },
    { key: "at", label: "Time", unit: "UTC", render: (r) => dateTime(r.at, true) },
    { key: "actor", label: "Actor", render: (r) => h("div", null, h("div", { class: "mono" }, r.actor), r.on_behalf_of ? h("div", { class: "cell-sub" }, `for ${r.on_behalf_of}`) : null) },
    { key: "action", label: "Action", render: (r) => h("span", { class: "mono cell-main" }, r.action) },
    { key: "resource", label: "Resource", render: (r) => (String(r.action).endsWith(` ${r.resource}`) ? h("span", { class: "faint" }, "route") : h("span", { class: "mono" }, r.resource)) },
    { key: "outcome", label: "Outcome", render: (r) => badge(r.outcome, r.outcome === "ok" ? "ok" : "bad") },
    { key: "origin", label: "Origin", render: (r) => (r.origin ? h("span", { class: "mono" }, r.origin) : null) },
    { key: "detail", label: "Detail", cls: "wrap", value: (r) => detailText(r.detail), render: (r) => h("span", { class: "cell-sub mono" }, detailText(r.detail)) },
    { key: "hash", label: "Hash", render: (r) => h("span", { class: "mono faint", title: `hash ${r.hash}\nprev ${r.prev_hash}` }, r.hash.slice(0, 10) + "…") },
  ], rows, {
    testid: "audit-records", rowTestid: (r) => `audit-${r.seq}`, filter: true, dense: true,
    empty: { title: "No audit records yet", text: "Every admin call, sign-in and key change is recorded here, hash-chained so no record can be changed or removed unnoticed.", iconName: "audit" },
  });
  const total = Math.max(verify.checked || 0, newest); // the log may have grown since it was checked
  const pager = h("div", { class: "btn-row" },
    h("span", { class: "muted" }, rows.length ? `#${int(oldest)}–#${int(newest)} of ${int(total)}` : ""),
    button("Newer", () => ctx.setParams({ to: newest + PAGE >= total ? null : String(newest + PAGE) }), { size: "sm", testid: "audit-newer", disabled: to === null || newest >= total }),
    button("Older", () => ctx.setParams({ to: String(oldest - 1) }), { size: "sm", testid: "audit-older", disabled: oldest <= 1 }));

  const cards = [status,
    card("Audit log", { subtitle: "Newest first. Reading the log is itself recorded", cls: "flush", actions: [pager] }, table)];
  if (doctor) {
    const bad = doctor.findings.filter((f) => f.status !== "ok");
    cards.push(card("Compliance", {
      subtitle: `Profile ${doctor.profile}: ${bad.length ? `${plural(bad.length, "finding")} to look at` : "every check passes"}`, cls: "flush", testid: "compliance",
    }, dataTable([
      { key: "check", label: "Check", render: (f) => h("span", { class: "cell-main" }, f.check) },
      { key: "status", label: "Status", render: (f) => badge(f.status, f.status === "ok" ? "ok" : f.status === "fail" ? "bad" : "warn") },
      { key: "detail", label: "Detail", cls: "wrap" },
      { key: "fix", label: "Fix", cls: "wrap", render: (f) => f.fix },
    ], doctor.findings, { dense: true, empty: { title: "No checks ran" } })));
  }
  ctx.mount(cards);
}
