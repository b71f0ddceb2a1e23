// Console users: people who sign in with a name and password, one role each. Platform roles
// live in the system tenant; a tenant's users are its tenant-admins.

import { del, post } from "../../api.js";
import { h } from "../../dom.js";
import { date, dateTime, relative } from "../../format.js";
import { badge, button, card, emptyState, toast } from "../../ui.js";
import { dataTable } from "../../table.js";
import { confirmDialog, formDialog } from "../../dialog.js";

const PLATFORM_ROLES = ["platform-admin", "operator", "auditor"];

export function userStatus(u, now = Date.now() / 1000) {
  if (u.disabled_at) return "disabled";
  if (u.locked_until && u.locked_until > now) return "locked";
  return "active";
}

export function usersTab(ctx, data) {
  const write = ctx.can("users:write");
  if (data.users === null) {
    return card("Users", {}, emptyState({ title: "Console users are not available on this server", text: "This server has no /admin/users yet; sign in with a management key.", iconName: "tenants" }));
  }
  const table = dataTable([
    { key: "name", label: "User", render: (u) => h("span", { class: "cell-main" }, u.name) },
    { key: "tenant", label: "Tenant" },
    { key: "role", label: "Role", render: (u) => badge(u.role, PLATFORM_ROLES.includes(u.role) ? "info" : "neutral") },
    { key: "status", label: "Status", value: userStatus, render: (u) => h("div", null, badge(userStatus(u), undefined, `user-status-${u.id}`),
      userStatus(u) === "locked" ? h("div", { class: "cell-sub" }, `after failed sign-ins, until ${dateTime(u.locked_until)} UTC`) : null,
      u.disabled_at ? h("div", { class: "cell-sub" }, `since ${date(u.disabled_at)}`) : null) },
    { key: "created_at", label: "Created", render: (u) => `${date(u.created_at)} (${relative(u.created_at)})` },
    write ? { key: "actions", label: "", value: () => "", render: (u) => u.disabled_at ? null : h("div", { class: "btn-row nowrap" },
      button("Set password", () => setPassword(ctx, u), { size: "sm", testid: `user-password-${u.id}` }),
      u.name === ctx.session.name ? null : button("Disable", () => disable(ctx, u), { size: "sm", kind: "danger", testid: `user-disable-${u.id}` })) } : null,
  ].filter(Boolean), data.users, {
    testid: "users", rowTestid: (u) => `user-${u.id}`, filter: true, rowClass: (u) => u.disabled_at && "row-muted",
    empty: { title: "No console users yet", text: "Add people who manage this tenant; each signs in with a name and password.", iconName: "tenants",
      action: write ? button("New user", () => createUser(ctx, data), { kind: "primary", iconName: "plus" }) : null },
  });
  return card("Users", {
    subtitle: "People who sign in to this console; what each sees and does follows their role",
    cls: "flush",
    actions: write ? [button("New user", () => createUser(ctx, data), { kind: "primary", size: "sm", iconName: "plus", testid: "user-create" })] : [],
  }, table);
}

function passwordFields() {
  return [
    { name: "password", label: "Password", type: "password", required: true, autocomplete: "new-password", help: "At least 12 characters." },
    { name: "confirm", label: "Repeat password", type: "password", required: true, autocomplete: "new-password" },
  ];
}

function createUser(ctx, data) {
  const platform = ctx.session.tenant === "system";
  formDialog({
    title: "New console user",
    intro: platform ? "Platform roles (platform-admin, operator, auditor) belong to the system tenant; a customer tenant's users are tenant-admins." : null,
    testid: "user-new",
    submitTestid: "user-create-submit",
    fields: [
      { name: "tenant", label: "Tenant", type: "select", options: data.tenantNames, value: ctx.session.tenant, required: true, disabled: !platform },
      { name: "name", label: "User name", required: true, placeholder: "alice", help: "a-z, 0-9, '-' and '_'." },
      { name: "role", label: "Role", type: "select", options: platform ? [...PLATFORM_ROLES, "tenant-admin"] : ["tenant-admin"], value: platform ? "operator" : "tenant-admin", required: true },
      ...passwordFields(),
    ],
    submitLabel: "Create user",
    onSubmit: async (v) => {
      if (v.password !== v.confirm) throw new Error("The two passwords differ.");
      const tenant = platform ? v.tenant : ctx.session.tenant;
      await post("/admin/users", { tenant, name: v.name, role: v.role, password: v.password });
      toast(`User ${v.name} created`);
      ctx.refresh();
    },
  });
}

function setPassword(ctx, u) {
  formDialog({
    title: `Set a new password for ${u.name}`,
    intro: "Their other sessions end; tell them the new password by a channel you trust.",
    testid: "user-password",
    fields: passwordFields(),
    submitLabel: "Set password",
    onSubmit: async (v) => {
      if (v.password !== v.confirm) throw new Error("The two passwords differ.");
      await post(`/admin/users/${encodeURIComponent(u.id)}/password`, { password: v.password });
      toast(`Password for ${u.name} changed`);
      ctx.refresh();
    },
  });
}

async function disable(ctx, u) {
  const ok = await confirmDialog({ title: `Disable ${u.name}?`, text: `${u.name} is signed out everywhere and cannot sign in again. Their audit records stay.`, confirmLabel: "Disable user", danger: true });
  if (!ok) return;
  try {
    await del(`/admin/users/${encodeURIComponent(u.id)}`);
    toast(`${u.name} disabled`);
    ctx.refresh();
  } catch (e) { toast(e.message, "bad"); }
}
