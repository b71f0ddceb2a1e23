// Agents: software that calls models on someone's behalf, each with its own key, allow-lists,
// rate limits and budget from a profile (restricted, standard, batch), overridable here.

import { del, post } from "../../api.js";
import { h } from "../../dom.js";
import { date } from "../../format.js";
import { badge, button, card, chips, secretReveal, toast } from "../../ui.js";
import { dataTable } from "../../table.js";
import { confirmDialog, formDialog } from "../../dialog.js";
import { budgetLine, keyStatus, limitsLine } from "./keys.js";

const PROFILES = [
  ["restricted", "restricted: no tools, 20 rpm, 200K tokens/day"],
  ["standard", "standard: listed tools, 60 rpm, 2M tokens/day"],
  ["batch", "batch: 600 rpm, 50M tokens/month"],
];

export function agentsTab(ctx, data) {
  const write = ctx.can("agents:write");
  const keyOf = new Map((data.keys || []).filter((k) => k.agent && keyStatus(k) === "active").map((k) => [k.agent, k]));
  const table = dataTable([
    { key: "name", label: "Agent", render: (a) => h("div", null, h("div", { class: "cell-main" }, a.name), h("div", { class: "cell-sub mono" }, a.id)) },
    { key: "tenant", label: "Tenant" },
    { key: "owner", label: "Owner" },
    { key: "profile", label: "Profile", render: (a) => badge(a.profile, "neutral") },
    { key: "models", label: "Models", value: (a) => ((keyOf.get(a.id) || {}).models || []).join(" "), render: (a) => keyOf.get(a.id) ? chips(keyOf.get(a.id).models, { empty: "any model", max: 3 }) : null },
    { key: "tools", label: "Tools", value: (a) => ((keyOf.get(a.id) || {}).tools || []).join(" "), render: (a) => keyOf.get(a.id) ? chips(keyOf.get(a.id).tools, { empty: "any tool", max: 3 }) : null },
    { key: "limits", label: "Limits", value: (a) => limitsLine(keyOf.get(a.id) || {}), render: (a) => (keyOf.get(a.id) ? limitsLine(keyOf.get(a.id)) : null) },
    { key: "budget", label: "Token budget", value: (a) => (keyOf.get(a.id) || {}).budget_tokens, render: (a) => (keyOf.get(a.id) ? budgetLine(keyOf.get(a.id)) : null) },
    { key: "created_at", label: "Registered", render: (a) => date(a.created_at) },
    { key: "status", label: "Status", value: (a) => (a.retired_at ? "retired" : "active"), render: (a) => badge(a.retired_at ? "retired" : "active", undefined, `agent-status-${a.id}`) },
    write ? { key: "actions", label: "", value: () => "", render: (a) => a.retired_at ? null : button("Retire", () => retire(ctx, a), { size: "sm", kind: "danger", testid: `agent-retire-${a.id}` }) } : null,
  ].filter(Boolean), data.agents || [], {
    testid: "agents", rowTestid: (a) => `agent-${a.id}`, filter: true, rowClass: (a) => a.retired_at && "row-muted",
    empty: { title: "No agents registered", text: "Register each agent (a support bot, a coding assistant, a batch job) to give it its own key, allow-lists and budget, and see its usage apart.", iconName: "key",
      action: write ? button("Register agent", () => registerAgent(ctx, data), { kind: "primary", iconName: "plus" }) : null },
  });
  return card("Agents", {
    subtitle: "Each agent has its own key; its usage, budget and audit trail name the agent and its owner",
    cls: "flush",
    actions: write ? [button("Register agent", () => registerAgent(ctx, data), { kind: "primary", size: "sm", iconName: "plus", testid: "agent-create" })] : [],
  }, table);
}

async function retire(ctx, a) {
  const ok = await confirmDialog({ title: `Retire ${a.name}?`, text: "Its key is revoked at once; its usage and audit records stay.", confirmLabel: "Retire agent", danger: true });
  if (!ok) return;
  try {
    await del(`/admin/agents/${encodeURIComponent(a.id)}`);
    toast(`${a.name} retired`);
    ctx.refresh();
  } catch (e) { toast(e.message, "bad"); }
}

function list(text) {
  const items = text.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
  return items.length ? items : null;
}

function registerAgent(ctx, data) {
  const platform = ctx.session.tenant === "system";
  formDialog({
    title: "Register an agent",
    intro: "The profile sets its limits and budget; anything you fill in below overrides the profile.",
    testid: "agent-new",
    submitTestid: "agent-create-submit",
    wide: true,
    fields: [
      { name: "tenant", label: "Tenant", type: "select", options: data.tenantNames.filter((t) => t !== "system"), value: platform ? undefined : ctx.session.tenant, required: true, disabled: !platform },
      { name: "name", label: "Name", required: true, placeholder: "support-bot" },
      { name: "owner", label: "Owner", required: true, placeholder: "alice@example.com", help: "The person answerable for it." },
      { name: "profile", label: "Profile", type: "select", options: PROFILES, value: "standard", required: true },
      { name: "models", label: "Model allow-list", placeholder: "qwen3-8b", help: "Comma-separated; empty: every model." },
      { name: "tools", label: "Tool allow-list", placeholder: "search, crm.lookup" },
      { name: "rpm", label: "Requests per minute", type: "number", min: 1 },
      { name: "budget_tokens", label: "Token budget", type: "number", min: 1, unit: "tokens" },
      { name: "budget_period", label: "Budget period", type: "select", options: [["", "the profile's"], ["day", "per day"], ["month", "per month"], ["total", "total"]], value: "" },
    ],
    submitLabel: "Register agent",
    onSubmit: async (v) => {
      const body = { tenant: platform ? v.tenant : ctx.session.tenant, name: v.name, owner: v.owner, profile: v.profile };
      const models = list(v.models), tools = list(v.tools);
      if (models) body.models = models;
      if (tools) body.tools = tools;
      if (v.rpm) body.rpm = Number(v.rpm);
      if (v.budget_tokens) body.budget_tokens = Number(v.budget_tokens);
      if (v.budget_period) body.budget_period = v.budget_period;
      const out = await post("/admin/agents", body);
      ctx.refresh();
      return { show: secretReveal(`Agent ${out.agent.name} registered: its key`, out.key.key) };
    },
  });
}
