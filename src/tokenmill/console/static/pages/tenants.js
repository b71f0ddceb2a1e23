// Access: tenants, console users, API keys and agents, one tab each (shown when the session
// may read them). A tenant-admin sees and manages its own tenant only.

import { get, maybe, patch, post } from "../api.js";
import { h } from "../dom.js";
import { date, int } from "../format.js";
import { badge, button, card, tabs, toast } from "../ui.js";
import { dataTable } from "../table.js";
import { formDialog } from "../dialog.js";
import { keysTab } from "./access/keys.js";
import { usersTab } from "./access/users.js";
import { agentsTab } from "./access/agents.js";

const TABS = [
  { id: "tenants", label: "Tenants", perm: "tenants:read" },
  { id: "users", label: "Users", perm: "users:read" },
  { id: "keys", label: "API keys", perm: "keys:read" },
  { id: "agents", label: "Agents", perm: "agents:read" },
];

export async function render(ctx) {
  const shown = TABS.filter((t) => ctx.can(t.perm));
  const active = shown.find((t) => t.id === ctx.params.get("tab")) || shown[0];
  const [tenants, users, keys, agents] = await Promise.all([
    ctx.can("tenants:read") ? get("/admin/tenants") : null,
    ctx.can("users:read") ? maybe("/admin/users") : null,
    ctx.can("keys:read") ? get("/admin/keys") : null,
    ctx.can("agents:read") ? get("/admin/agents") : null,
  ]);
  const data = {
    tenants: tenants ? tenants.data : null,
    users: users ? users.data : null,
    keys: keys ? keys.data : null,
    agents: agents ? agents.data : null,
  };
  // The tenants a form may pick: all (platform) or the session's own.
  data.tenantNames = data.tenants ? data.tenants.map((t) => t.name) : [ctx.session.tenant];
  const counts = {
    tenants: data.tenants && data.tenants.length,
    users: data.users && data.users.filter((u) => !u.disabled_at).length,
    keys: data.keys && data.keys.filter((k) => !k.revoked_at).length,
    agents: data.agents && data.agents.filter((a) => !a.retired_at).length,
  };
  const bar = tabs(shown.map((t) => ({ ...t, count: counts[t.id] ?? null })), active.id, (id) => ctx.setParams({ tab: id }));
  let body;
  if (active.id === "tenants") body = tenantsTab(ctx, data);
  else if (active.id === "users") body = usersTab(ctx, data);
  else if (active.id === "keys") body = keysTab(ctx, data);
  else body = agentsTab(ctx, data);
  ctx.mount(bar, body);
}

function tenantsTab(ctx, data) {
  const write = ctx.can("tenants:write");
  const count = (list, t, live) => (list ? list.filter((x) => x.tenant === t && live(x)).length : null);
  const table = dataTable([
    { key: "name", label: "Tenant", render: (t) => h("div", null, h("div", { class: "cell-main" }, t.display_name || t.name), h("div", { class: "cell-sub mono" }, t.name)) },
    { key: "weight", label: "Fair-share weight", num: true, render: (t) => int(t.weight) },
    { key: "pii_mode", label: "PII guard", value: (t) => t.pii_mode || "", render: (t) => (t.pii_mode ? badge(t.pii_mode, t.pii_mode === "block" ? "warn" : "info") : h("span", { class: "muted" }, "server default")) },
    data.keys ? { key: "keys", label: "Active keys", num: true, value: (t) => count(data.keys, t.name, (k) => !k.revoked_at), render: (t) => int(count(data.keys, t.name, (k) => !k.revoked_at)) } : null,
    data.agents ? { key: "agents", label: "Agents", num: true, value: (t) => count(data.agents, t.name, (a) => !a.retired_at), render: (t) => int(count(data.agents, t.name, (a) => !a.retired_at)) } : null,
    data.users ? { key: "users", label: "Users", num: true, value: (t) => count(data.users, t.name, (u) => !u.disabled_at), render: (t) => int(count(data.users, t.name, (u) => !u.disabled_at)) } : null,
    { key: "created_at", label: "Created", render: (t) => date(t.created_at) },
    write ? { key: "actions", label: "", value: () => "", render: (t) => button("Edit", () => editTenant(ctx, t), { size: "sm", testid: `tenant-edit-${t.name}` }) } : null,
  ].filter(Boolean), data.tenants, {
    testid: "tenants", rowTestid: (t) => `tenant-${t.name}`, filter: true, sort: { key: "name", dir: "asc" },
    empty: { title: "No tenants yet", text: "Create a tenant for each customer or team; its keys, usage and invoices stay separate.", iconName: "tenants" },
  });
  return card("Tenants", {
    subtitle: "While tenants wait for the same model, each is served tokens in proportion to its weight",
    cls: "flush",
    actions: write ? [button("New tenant", () => createTenant(ctx), { kind: "primary", size: "sm", iconName: "plus", testid: "tenant-create" })] : [],
  }, table);
}

const PII = [["", "server default"], ["off", "off"], ["log", "log (record only)"], ["mask", "mask before the model"], ["block", "block the request"]];

function createTenant(ctx) {
  formDialog({
    title: "New tenant",
    testid: "tenant-new",
    fields: [
      { name: "name", label: "Name", required: true, placeholder: "acme", help: "a-z, 0-9, '-' and '_'; used in keys, usage and invoices." },
      { name: "display_name", label: "Display name", placeholder: "Acme Corp" },
      { name: "weight", label: "Fair-share weight", type: "number", min: 1, max: 1000, value: 1, required: true, help: "3 gets three times the tokens of 1 when both wait." },
      { name: "pii_mode", label: "PII guard", type: "select", options: PII, value: "" },
    ],
    submitLabel: "Create tenant",
    onSubmit: async (v) => {
      const body = { name: v.name, weight: Number(v.weight) };
      if (v.display_name) body.display_name = v.display_name;
      if (v.pii_mode) body.pii_mode = v.pii_mode;
      await post("/admin/tenants", body);
      toast(`Tenant ${v.name} created`);
      ctx.refresh();
    },
  });
}

function editTenant(ctx, t) {
  formDialog({
    title: `Edit ${t.display_name || t.name}`,
    intro: "The running scheduler and content guard apply changes at once; service already received is not re-weighed.",
    testid: "tenant-edit",
    fields: [
      { name: "weight", label: "Fair-share weight", type: "number", min: 1, max: 1000, value: t.weight, required: true },
      { name: "pii_mode", label: "PII guard", type: "select", options: PII, value: t.pii_mode || "" },
    ],
    onSubmit: async (v) => {
      await patch(`/admin/tenants/${encodeURIComponent(t.name)}`, { weight: Number(v.weight), pii_mode: v.pii_mode || null });
      toast(`${t.name} updated`);
      ctx.refresh();
    },
  });
}
