// API keys: who holds them, what they may reach (scopes, model and tool allow-lists), their
// limits and token budgets; create (the secret shown once), rotate, revoke.

import { del, post } from "../../api.js";
import { h } from "../../dom.js";
import { compact, date, fromLocalInput, relative, unix } from "../../format.js";
import { badge, button, card, chips, secretReveal, toast } from "../../ui.js";
import { dataTable } from "../../table.js";
import { confirmDialog, formDialog } from "../../dialog.js";

const PLATFORM_ROLES = ["platform-admin", "operator", "auditor"];

export function keyStatus(k, now = Date.now() / 1000) {
  if (k.revoked_at) return "revoked";
  if (k.expires_at && unix(k.expires_at) < now) return "expired";
  return "active";
}

export function limitsLine(k) {
  const parts = [];
  if (k.rpm) parts.push(`${compact(k.rpm)} rpm`);
  if (k.tpm) parts.push(`${compact(k.tpm)} tpm`);
  if (k.concurrency) parts.push(`${k.concurrency} at once`);
  return parts.length ? parts.join(" · ") : null;
}

export function budgetLine(k) {
  return k.budget_tokens ? `${compact(k.budget_tokens)} tokens / ${k.budget_period === "total" ? "total" : k.budget_period}` : null;
}

export function keysTab(ctx, data) {
  const write = ctx.can("keys:write");
  const showAll = ctx.params.get("revoked") === "1";
  const all = data.keys || [];
  const rows = showAll ? all : all.filter((k) => keyStatus(k) === "active");
  const hidden = all.length - rows.length;
  const agentName = new Map((data.agents || []).map((a) => [a.id, a.name]));
  const table = dataTable([
    { key: "name", label: "Key", cls: "wrap", value: (k) => `${k.name} ${k.tenant} ${k.owner || ""}`, render: (k) => h("div", { title: k.id }, h("div", { class: "cell-main" }, k.name),
      h("div", { class: "cell-sub" }, h("strong", null, k.tenant), " · ", h("span", { class: "mono" }, `${k.prefix}…`), k.agent ? ` · agent ${agentName.get(k.agent) || k.agent}` : "", k.owner ? ` · ${k.owner}` : "")) },
    { key: "role", label: "Role", render: (k) => h("div", null, badge(k.role, PLATFORM_ROLES.includes(k.role) ? "info" : "neutral"), h("div", { class: "cell-sub" }, (k.scopes || []).join(" + "))) },
    { key: "allowed", label: "Allowed models · tools", value: (k) => `${(k.models || ["any"]).join(" ")} ${(k.tools || ["any"]).join(" ")}`,
      render: (k) => h("div", { class: "stack-tight" }, chips(k.models, { empty: "any model", max: 3 }),
        h("div", null, chips(k.tools, { empty: "any tool", max: 3 }), k.tools && k.tool_policy === "drop" ? h("span", { class: "cell-sub" }, " others dropped") : null)) },
    { key: "limits", label: "Limits · budget", value: (k) => k.budget_tokens || 0,
      render: (k) => (limitsLine(k) || budgetLine(k) ? h("div", null, h("div", null, limitsLine(k) || h("span", { class: "muted" }, "no rate limit")), budgetLine(k) ? h("div", { class: "cell-sub" }, budgetLine(k)) : null) : h("span", { class: "muted" }, "none")) },
    { key: "status", label: "Status", value: keyStatus, render: (k) => h("div", null, badge(keyStatus(k), undefined, `key-status-${k.id}`),
      h("div", { class: "cell-sub" }, `since ${date(k.created_at)}`), h("div", { class: "cell-sub" }, k.expires_at ? `expires ${relative(k.expires_at)}` : "no expiry")) },
    write ? { key: "actions", label: "", value: () => "", render: (k) => keyStatus(k) !== "active" ? null : h("div", { class: "btn-row nowrap" },
      button("Rotate", () => rotate(ctx, k), { size: "sm", testid: `key-rotate-${k.id}` }),
      button("Revoke", () => revoke(ctx, k), { size: "sm", kind: "danger", testid: `key-revoke-${k.id}` })) } : null,
  ].filter(Boolean), rows, {
    testid: "keys", rowTestid: (k) => `key-${k.id}`, filter: true, rowClass: (k) => keyStatus(k) !== "active" && "row-muted",
    empty: { title: "No API keys yet", text: "Create a key for each application or person; the secret is shown once, then only its prefix.", iconName: "key",
      action: write ? button("New key", () => createKey(ctx, data), { kind: "primary", iconName: "plus" }) : null },
  });
  const toggle = hidden || showAll
    ? h("label", { class: "check" }, h("input", { type: "checkbox", checked: showAll, testid: "keys-show-revoked", onchange: (e) => ctx.setParams({ revoked: e.target.checked ? "1" : null }) }),
        h("span", null, showAll ? "Showing revoked and expired keys" : `Show ${hidden} revoked or expired`))
    : null;
  return card("API keys", {
    subtitle: "Keys authenticate the OpenAI API (inference) and the admin API (management)",
    cls: "flush",
    actions: [toggle, write ? button("New key", () => createKey(ctx, data), { kind: "primary", size: "sm", iconName: "plus", testid: "key-create" }) : null].filter(Boolean),
  }, table);
}

async function revoke(ctx, k) {
  const ok = await confirmDialog({ title: `Revoke ${k.name}?`, text: `Requests with ${k.prefix}… are refused from the next one on, on every gateway. This cannot be undone.`, confirmLabel: "Revoke key", danger: true });
  if (!ok) return;
  try {
    await del(`/admin/keys/${encodeURIComponent(k.id)}`);
    toast(`${k.name} revoked`);
    ctx.refresh();
  } catch (e) { toast(e.message, "bad"); }
}

function rotate(ctx, k) {
  formDialog({
    title: `Rotate ${k.name}`,
    intro: "A new secret with the same rights. The old one keeps working for the grace period, so clients can switch without an outage.",
    testid: "key-rotate",
    fields: [{ name: "grace_s", label: "Grace period", unit: "seconds", type: "number", min: 0, max: 604800, value: 3600, required: true, help: "0: the old secret stops at once." }],
    submitLabel: "Rotate key",
    onSubmit: async (v) => {
      const issued = await post(`/admin/keys/${encodeURIComponent(k.id)}/rotate`, { grace_s: Number(v.grace_s) });
      ctx.refresh();
      return { show: secretReveal(`New secret for ${issued.name}`, issued.key) };
    },
  });
}

function list(text) {
  const items = text.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
  return items.length ? items : null;
}

function createKey(ctx, data) {
  const platform = ctx.session.tenant === "system";
  const roles = platform ? ["member", "tenant-admin", "platform-admin", "operator", "auditor"] : ["member", "tenant-admin"];
  formDialog({
    title: "New API key",
    testid: "key-new",
    submitTestid: "key-create-submit",
    wide: true,
    fields: [
      { name: "tenant", label: "Tenant", type: "select", options: data.tenantNames, value: platform ? (data.tenantNames.find((t) => t !== "system") || "system") : ctx.session.tenant, required: true, disabled: !platform },
      { name: "name", label: "Name", required: true, placeholder: "backend-prod", value: "" },
      { name: "role", label: "Role", type: "select", options: roles, value: "member", required: true, help: "Platform roles belong to the system tenant." },
      { name: "owner", label: "Owner", placeholder: "alice@example.com" },
      { name: "models", label: "Model allow-list", placeholder: "llama-3.1-8b, qwen3-8b", wide: true, help: "Comma-separated; empty: every model." },
      { name: "tools", label: "Tool allow-list", placeholder: "search, crm.lookup", help: "Empty: any tool." },
      { name: "tool_policy", label: "Tools off the list", type: "select", options: [["refuse", "refuse the request (403)"], ["drop", "drop the tool"]], value: "refuse" },
      { name: "rpm", label: "Requests per minute", type: "number", min: 1 },
      { name: "tpm", label: "Tokens per minute", type: "number", min: 1 },
      { name: "concurrency", label: "Concurrent requests", type: "number", min: 1 },
      { name: "budget_tokens", label: "Token budget", type: "number", min: 1, unit: "tokens" },
      { name: "budget_period", label: "Budget period", type: "select", options: [["total", "total"], ["day", "per day"], ["month", "per month"]], value: "month" },
      { name: "expires_at", label: "Expires", type: "datetime", unit: "UTC" },
    ],
    submitLabel: "Create key",
    onSubmit: async (v) => {
      const body = { tenant: platform ? v.tenant : ctx.session.tenant, name: v.name, role: v.role, tool_policy: v.tool_policy };
      if (v.owner) body.owner = v.owner;
      const models = list(v.models), tools = list(v.tools);
      if (models) body.models = models;
      if (tools) body.tools = tools;
      for (const k of ["rpm", "tpm", "concurrency", "budget_tokens"]) if (v[k]) body[k] = Number(v[k]);
      if (body.budget_tokens) body.budget_period = v.budget_period;
      if (v.expires_at) body.expires_at = new Date(fromLocalInput(v.expires_at) * 1000).toISOString();
      const issued = await post("/admin/keys", body);
      ctx.refresh();
      return { show: h("div", { class: "stack" }, secretReveal(`Key ${issued.name} created for ${issued.tenant}`, issued.key),
        h("p", { class: "muted" }, "Use it as a bearer token: ", h("code", null, "Authorization: Bearer tm-…"), " with any OpenAI client pointed at this server's /v1.")) };
    },
  });
}
