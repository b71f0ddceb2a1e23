// The console: session, navigation and the page router. Each page is a module under pages/
// exporting render(ctx); navigation shows a page only when the session's permissions allow
// its data (the server enforces the same policy on every call).

import { get, post, setCsrf } from "./api.js";
import { h, clear, icon } from "./dom.js";
import { loginScreen } from "./login.js";
import { destroyCharts } from "./charts.js";
import { errorBox, loading, badge } from "./ui.js";

const BASE = "/console";

const PAGES = [
  { id: "overview", label: "Overview", icon: "overview", anyOf: ["usage:read"], sub: "Traffic, latency, revenue and capacity at a glance" },
  { id: "models", label: "Models", icon: "models", anyOf: ["deployments:read"], sub: "Deployments, replicas, health and placement" },
  { id: "fleet", label: "Fleet", icon: "fleet", anyOf: ["deployments:read"], sub: "Nodes, accelerators and live telemetry" },
  { id: "tenants", label: "Access", icon: "tenants", anyOf: ["tenants:read", "users:read", "keys:read", "agents:read"], sub: "Tenants, users, API keys and agents" },
  { id: "usage", label: "Usage", icon: "usage", anyOf: ["usage:read"], sub: "Requests and tokens from the ledger, grouped and filtered" },
  { id: "billing", label: "Billing", icon: "billing", anyOf: ["invoices:read", "prices:read", "budgets:read"], sub: "Invoices, price book, budgets and credits" },
  { id: "economics", label: "Economics", icon: "economics", anyOf: ["kpis:read"], sub: "Cost per token, margin, utilisation, ROI and capacity planning" },
  { id: "audit", label: "Audit", icon: "audit", anyOf: ["audit:read"], sub: "The tamper-evident audit log and compliance checks" },
];

const LOADERS = {
  overview: () => import("./pages/overview.js"),
  models: () => import("./pages/models.js"),
  fleet: () => import("./pages/fleet.js"),
  tenants: () => import("./pages/tenants.js"),
  usage: () => import("./pages/usage.js"),
  billing: () => import("./pages/billing.js"),
  economics: () => import("./pages/economics.js"),
  audit: () => import("./pages/audit.js"),
};

const root = document.getElementById("app");
let session = null;
let renderToken = 0;
let shell = null; // {nav, title, sub, actions, content}

const can = (perm) => !!session && session.permissions.includes(perm);
const allowed = (page) => page.anyOf.some(can);

function pageFromPath() {
  const rest = location.pathname.replace(/^\/console\/?/, "").split("/")[0];
  const wanted = PAGES.find((p) => p.id === rest);
  if (wanted && allowed(wanted)) return wanted;
  return PAGES.find(allowed) || null;
}

export function navigate(pageId, params = {}) {
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "")).toString();
  history.pushState(null, "", `${BASE}/${pageId === "overview" ? "" : pageId}${qs ? "?" + qs : ""}`);
  show();
}

function setParams(changes, { replace = false } = {}) {
  const params = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") params.delete(k);
    else params.set(k, v);
  }
  const qs = params.toString();
  history[replace ? "replaceState" : "pushState"](null, "", location.pathname + (qs ? "?" + qs : ""));
  show();
}

function buildShell() {
  const nav = h("nav", { class: "nav", "aria-label": "Console" },
    PAGES.filter(allowed).map((p) => h("a", {
      href: `${BASE}/${p.id === "overview" ? "" : p.id}`, class: "nav-link", testid: `nav-${p.id}`, dataset: { page: p.id },
      onclick: (ev) => {
        if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) return;
        ev.preventDefault();
        const keep = new URLSearchParams(location.search);
        const range = {};
        for (const k of ["range", "since", "until"]) if (keep.get(k)) range[k] = keep.get(k);
        navigate(p.id, ["overview", "usage", "economics"].includes(p.id) ? range : {});
      },
    }, icon(p.icon), h("span", null, p.label))));
  const who = h("div", { class: "who", testid: "session-user" },
    h("div", { class: "avatar", "aria-hidden": "true" }, (session.name || "?").slice(0, 1).toUpperCase()),
    h("div", { class: "who-text" },
      h("div", { class: "who-name", title: session.name }, session.name),
      h("div", { class: "who-meta" }, badge(session.role, "role", "session-role"),
        h("span", { class: "who-tenant", testid: "session-tenant" }, session.tenant === "system" ? "all tenants" : `tenant ${session.tenant}`))),
    h("button", { type: "button", class: "btn ghost sm icon-only", testid: "logout", title: "Sign out", "aria-label": "Sign out", onclick: logout }, icon("logout")));
  const title = h("h1", { class: "page-title", testid: "page-title" });
  const sub = h("div", { class: "page-sub" });
  const actions = h("div", { class: "page-actions" });
  const refresh = h("button", { type: "button", class: "btn sm icon-only", testid: "refresh", title: "Refresh", "aria-label": "Refresh", onclick: () => show() }, icon("refresh"));
  const content = h("main", { class: "content", testid: "content" });
  const side = h("aside", { class: "side" }, h("div", { class: "side-inner" },
    h("a", { class: "brand", href: `${BASE}/` }, h("img", { src: "/console/static/logo.svg", alt: "", width: "26", height: "26" }),
      h("span", null, "TokenMill"), h("span", { class: "brand-tag" }, "console")),
    nav, h("div", { class: "side-foot" }, who)));
  clear(root, h("div", { class: "shell" }, side,
    h("div", { class: "main" },
      h("header", { class: "topbar" }, h("div", { class: "titles" }, title, sub), h("div", { class: "top-right" }, actions, refresh)),
      content)));
  root.classList.remove("booting");
  shell = { nav, title, sub, actions, content };
}

async function show() {
  if (!session) return;
  const page = pageFromPath();
  const token = ++renderToken;
  destroyCharts();
  if (!shell) buildShell();
  if (!page) {
    clear(shell.content, errorBox({ message: `Your role (${session.role}) has no console pages. Ask a platform admin for a management role.` }));
    return;
  }
  for (const a of shell.nav.querySelectorAll(".nav-link")) a.classList.toggle("active", a.dataset.page === page.id);
  shell.title.textContent = page.label;
  shell.sub.textContent = page.sub;
  document.title = `${page.label} · TokenMill`;
  // A new page starts from a spinner; a refresh of the same page keeps what is on screen until
  // the new figures are in (no flash, no lost scroll position).
  const samePage = shell.content.dataset.page === page.id && shell.content.firstChild;
  shell.content.dataset.page = page.id;
  if (!samePage) {
    clear(shell.actions);
    clear(shell.content, loading());
  } else shell.content.classList.add("busy");
  const ctx = {
    session, can, navigate, setParams,
    params: new URLSearchParams(location.search),
    alive: () => token === renderToken,
    actions: (...nodes) => { if (token === renderToken) clear(shell.actions, nodes); },
    mount: (...nodes) => {
      if (token !== renderToken) return;
      shell.content.classList.remove("busy");
      clear(shell.content, nodes);
    },
    refresh: () => { if (token === renderToken) show(); },
  };
  try {
    const mod = await LOADERS[page.id]();
    await mod.render(ctx);
  } catch (e) {
    if (token !== renderToken || (e && e.status === 401)) return;
    shell.content.classList.remove("busy");
    console.error(e);
    clear(shell.content, errorBox(e, { retry: () => show() }));
  }
}

async function logout() {
  try { await post("/console/api/logout"); } catch { /* signed out either way */ }
  signedOut(null);
}

function signedOut(message) {
  session = null;
  shell = null;
  destroyCharts();
  setCsrf("");
  renderToken++;
  for (const d of document.querySelectorAll("dialog")) d.remove();
  root.classList.remove("booting");
  clear(root, loginScreen({ message, onSignedIn: signedIn }));
}

function signedIn(data) {
  session = data;
  setCsrf(data.csrf);
  buildShell();
  show();
}

window.addEventListener("popstate", () => show());
window.addEventListener("tm:signed-out", () => {
  if (session) signedOut("Your session has ended. Sign in again.");
});

(async function boot() {
  try {
    const current = await get("/console/api/session"); // 401, or 200/204 without a name: not signed in
    if (current && current.name && current.permissions) signedIn(current);
    else signedOut(null);
  } catch (e) {
    signedOut(e.status === 401 || e.status === 404 ? null : e.message);
  }
})();
