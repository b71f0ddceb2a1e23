// The console's building blocks: cards, KPI tiles, badges, meters, empty states, tabs.
// Tables live in table.js, dialogs in dialog.js.

import { h, icon, clear, rich } from "./dom.js";

export function card(title, { actions = [], subtitle = null, testid = null, cls = null } = {}, ...body) {
  const head = title
    ? h("div", { class: "card-head" },
        h("div", { class: "card-titles" }, h("h2", { class: "card-title" }, title),
          subtitle ? h("div", { class: "card-sub" }, subtitle) : null),
        actions.length ? h("div", { class: "card-actions" }, actions) : null)
    : null;
  return h("section", { class: ["card", cls], testid }, head, h("div", { class: "card-body" }, body));
}

// A KPI tile. `value` is the exact figure, as text; `raw` (optional) goes to data-value for tests.
export function kpi({ id, label, value, sub = null, tone = null, raw = null, title = null }) {
  return h("div", { class: ["kpi", tone && `tone-${tone}`], testid: `kpi-${id}`, dataset: raw !== null ? { value: String(raw) } : undefined, title },
    h("div", { class: "kpi-label" }, label),
    h("div", { class: ["kpi-value", String(value).length > 13 ? "longer" : String(value).length > 9 && "long"], testid: `kpi-${id}-value`, title: String(value) }, value),
    sub ? h("div", { class: "kpi-sub" }, sub) : null);
}

// Tiles in even rows: up to 6 side by side, more in two rows.
export function kpiRow(tiles, testid = null) {
  const list = tiles.filter(Boolean);
  const cols = list.length <= 6 ? list.length : Math.ceil(list.length / 2);
  return h("div", { class: ["kpis", `cols-${cols}`], testid }, list);
}

const TONES = {
  ready: "ok", ok: "ok", active: "ok", healthy: "ok", done: "ok", "in force": "ok", paid: "ok", live: "ok",
  starting: "info", scaling: "info", rolling: "info", scheduled: "info", draining: "warn", drained: "warn",
  degraded: "warn", locked: "warn", expired: "muted", superseded: "muted", retired: "muted", revoked: "muted",
  disabled: "muted", stopped: "muted", failed: "bad", unhealthy: "bad", denied: "bad", error: "bad", drift: "bad",
};

export function badge(text, tone = TONES[String(text).toLowerCase()] || "neutral", testid = null) {
  return h("span", { class: `badge badge-${tone}`, testid }, text);
}

// A horizontal meter: fraction 0..1 (null: unknown); `warnAt`/`badAt` colour it.
export function meter(fraction, { label = null, warnAt = 0.8, badAt = 0.95, mark = null } = {}) {
  const fill = h("div", { class: "meter-fill" });
  const known = fraction !== null && fraction !== undefined && !Number.isNaN(fraction);
  const f = known ? Math.max(0, Math.min(1, fraction)) : 0;
  fill.style.width = `${(f * 100).toFixed(1)}%`;
  if (known && fraction >= badAt) fill.classList.add("bad");
  else if (known && fraction >= warnAt) fill.classList.add("warn");
  const track = h("div", { class: "meter-track" }, fill);
  if (mark !== null) {
    const m = h("div", { class: "meter-mark" });
    m.style.left = `${Math.max(0, Math.min(1, mark)) * 100}%`;
    track.append(m);
  }
  return h("div", { class: ["meter", !known && "unknown"] }, track, label !== null ? h("span", { class: "meter-label" }, label) : null);
}

export function emptyState({ title, text = null, action = null, iconName = "inbox", testid = null, compact = false }) {
  return h("div", { class: ["empty", compact && "compact"], testid },
    h("div", { class: "empty-icon" }, icon(iconName)),
    h("div", { class: "empty-title" }, title),
    text ? h("div", { class: "empty-text" }, rich(text)) : null,
    action ? h("div", { class: "empty-action" }, action) : null);
}

export function errorBox(err, { retry = null } = {}) {
  const status = err && err.status ? ` (HTTP ${err.status})` : "";
  return h("div", { class: "alert alert-bad", role: "alert", testid: "error" },
    icon("alert"),
    h("div", { class: "alert-body" },
      h("strong", null, err && err.status === 403 ? "Not allowed" : "Something went wrong"),
      h("div", null, (err && err.message) || String(err), status)),
    retry ? h("button", { class: "btn sm", onclick: retry }, "Retry") : null);
}

export function notice(tone, title, text = null, ...extra) {
  return h("div", { class: `alert alert-${tone}` }, icon(tone === "ok" ? "check" : "alert"),
    h("div", { class: "alert-body" }, h("strong", null, title), text ? h("div", null, rich(text)) : null, extra));
}

export function loading(text = "Loading…") {
  return h("div", { class: "loading", testid: "loading" }, h("span", { class: "spinner" }), text);
}

export function button(label, onclick, { kind = null, testid = null, iconName = null, size = null, disabled = false, title = null, type = "button" } = {}) {
  return h("button", { type, class: ["btn", kind, size], onclick, testid, disabled, title, "aria-label": label ? null : title },
    iconName ? icon(iconName) : null, label);
}

export function linkButton(label, href, { testid = null, iconName = null, download = null, kind = null, size = null } = {}) {
  return h("a", { class: ["btn", kind, size], href, testid, download }, iconName ? icon(iconName) : null, label);
}

// Tabs: [{id, label, count?}] -> element; onSelect(id) re-renders the body the caller owns.
export function tabs(items, active, onSelect) {
  return h("div", { class: "tabs", role: "tablist" },
    items.map((t) => h("button", {
      type: "button", role: "tab", class: ["tab", t.id === active && "active"], testid: `tab-${t.id}`,
      "aria-selected": t.id === active ? "true" : "false", onclick: () => onSelect(t.id),
    }, t.label, t.count !== undefined && t.count !== null ? h("span", { class: "tab-count" }, String(t.count)) : null)));
}

export function code(text) {
  return h("code", { class: "mono" }, text);
}

export function chips(list, { empty = "any", max = 4 } = {}) {
  if (list === null || list === undefined) return h("span", { class: "muted" }, empty);
  if (!list.length) return h("span", { class: "muted" }, "none");
  const shown = list.slice(0, max).map((x) => h("span", { class: "chip" }, x));
  if (list.length > max) shown.push(h("span", { class: "chip more", title: list.slice(max).join(", ") }, `+${list.length - max}`));
  return h("span", { class: "chips" }, shown);
}

// A short-lived message at the bottom right.
export function toast(message, tone = "ok") {
  let host = document.querySelector(".toasts");
  if (!host) {
    host = h("div", { class: "toasts", "aria-live": "polite" });
    document.body.append(host);
  }
  const t = h("div", { class: `toast toast-${tone}`, testid: "toast" }, icon(tone === "ok" ? "check" : "alert"), message);
  host.append(t);
  setTimeout(() => t.classList.add("leaving"), 3500);
  setTimeout(() => t.remove(), 4000);
}

export function copyButton(text, testid = null) {
  const b = button("Copy", async () => {
    try {
      await navigator.clipboard.writeText(text);
      clear(b, icon("check"), "Copied");
    } catch {
      clear(b, "Select and copy");
    }
  }, { size: "sm", iconName: "copy", testid });
  return b;
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", null, k), h("dd", null, v ?? "—")]));
}

// A secret shown once (a new key): the value, a copy button, and what to do with it.
export function secretReveal(title, secret, note) {
  return h("div", { class: "secret" },
    notice("warn", title, note || "Copy it now: it is stored only as a hash and is never shown again."),
    h("div", { class: "secret-value" }, h("span", { testid: "new-key-secret" }, secret), copyButton(secret, "new-key-copy")));
}
