// Models and replicas: every deployment with its health, replicas and autoscaling range;
// deploy (with the placement and its reasons first), scale, and remove.

import { del, get, maybe, patch, post } from "../api.js";
import { h } from "../dom.js";
import { dateTime, int, plural, relative } from "../format.js";
import { badge, button, card, chips, code, kpi, kpiRow, kv, meter, notice, toast } from "../ui.js";
import { dataTable } from "../table.js";
import { confirmDialog, formDialog } from "../dialog.js";
import { placementView } from "../placement.js";

export async function render(ctx) {
  const write = ctx.can("deployments:write");
  if (write) ctx.actions(button("Deploy model", () => deployDialog(ctx), { kind: "primary", iconName: "plus", testid: "deploy-open" }));
  const [{ data: deps }, instances] = await Promise.all([get("/admin/deployments"), maybe("/admin/replicas")]);
  // Where each replica runs, as the controllers wrote it (an attached endpoint's status has no node).
  const nodeOf = new Map(((instances && instances.data) || []).map((r) => [r.id, r.node]));
  for (const d of deps) for (const r of d.replica_status) if (!r.node && nodeOf.get(r.id)) r.node = nodeOf.get(r.id);

  const want = deps.reduce((a, d) => a + d.replicas, 0);
  const ready = deps.reduce((a, d) => a + d.ready_replicas, 0);
  const failed = deps.filter((d) => d.state === "failed");
  const rolling = deps.filter((d) => d.rollout && d.rollout.state === "rolling");
  const served = deps.reduce((a, d) => a + d.replica_status.reduce((b, r) => b + (r.served || 0), 0), 0);

  const alerts = failed.map((d) => notice("bad", `${d.name} has failed`,
    [d.failure && d.failure.reason, d.failure && d.failure.hint].filter(Boolean).join(" — ") || "Its replicas could not start. See its details below."));

  const columns = [
    { key: "name", label: "Deployment", cls: "wrap", render: (d) => h("div", null, h("div", { class: "cell-main" }, d.name),
      h("div", { class: "cell-sub" }, d.engine, " · ", d.endpoint ? `${d.upstream_model || "endpoint"} @ ${d.endpoint}` : shortPath(d.model_path))) },
    { key: "state", label: "State", render: (d) => h("div", { class: "btn-row" }, badge(d.state, undefined, `state-${d.name}`),
      d.rollout && d.rollout.state === "rolling" ? badge(`rollout ${d.rollout.replaced}/${d.rollout.of}`, "info") : null) },
    { key: "ready", label: "Ready", num: true, value: (d) => d.ready_replicas / Math.max(1, d.replicas),
      render: (d) => meter(d.replicas ? d.ready_replicas / d.replicas : 0, { label: `${d.ready_replicas} / ${d.replicas}`, warnAt: 2, badAt: 2 }) },
    { key: "range", label: "Autoscale", value: (d) => d.max_replicas, render: (d) => d.min_replicas === d.max_replicas
      ? h("span", { class: "muted" }, `fixed at ${d.min_replicas}`) : `${d.min_replicas} – ${d.max_replicas}` },
    { key: "served", label: "Served", unit: "requests", num: true, value: (d) => d.replica_status.reduce((a, r) => a + (r.served || 0), 0),
      render: (d) => int(d.replica_status.reduce((a, r) => a + (r.served || 0), 0)) },
    { key: "nodes", label: "Nodes", value: (d) => nodesOf(d).join(" "), render: (d) => chips(nodesOf(d), { empty: "—" }) },
  ];
  if (write) {
    columns.push({ key: "actions", label: "Scale", value: () => "", render: (d) => scaleControls(ctx, d) });
  }

  const table = dataTable(columns, deps, {
    testid: "deployments", rowTestid: (d) => `deployment-${d.name}`, expand: (d) => details(d),
    empty: { title: "No models deployed", text: write ? "Deploy a model: a GGUF file on llama.cpp, or attach any OpenAI-compatible endpoint (vLLM, SGLang, MindIE)." : "A platform operator deploys models; they show here with their health.",
      action: write ? button("Deploy model", () => deployDialog(ctx), { kind: "primary", iconName: "plus" }) : null, iconName: "models" },
  });

  ctx.mount(
    kpiRow([
      kpi({ id: "deployments", label: "Deployments", value: int(deps.length), raw: deps.length, sub: failed.length ? `${failed.length} failed` : "all serving or starting", tone: failed.length ? "bad" : null }),
      kpi({ id: "replicas", label: "Replicas ready", value: `${ready} / ${want}`, raw: `${ready}/${want}`, tone: ready < want ? "warn" : want ? "ok" : null, sub: want - ready ? `${want - ready} not ready` : "all ready" }),
      kpi({ id: "rollouts", label: "Rollouts", value: int(rolling.length), raw: rolling.length, sub: rolling.length ? rolling.map((d) => d.name).join(", ") : "none in progress" }),
      kpi({ id: "served", label: "Requests served", value: int(served), raw: served, sub: "since each replica started" }),
    ]),
    alerts,
    card("Deployments", { subtitle: "Expand a row for its replicas, placement and options", cls: "flush" }, table));
}

function nodesOf(d) {
  return [...new Set(d.replica_status.map((r) => r.node).filter(Boolean))];
}

function shortPath(p) {
  if (!p) return "—";
  return p.length > 48 ? "…" + p.slice(-46) : p;
}

function scaleControls(ctx, d) {
  const input = h("input", { type: "number", class: "input sm num", min: "1", max: "64", value: String(d.replicas), testid: `replicas-${d.name}`, "aria-label": `Replicas of ${d.name}` });
  const scale = button("Scale", async () => {
    const n = Number(input.value);
    if (!Number.isInteger(n) || n < 1 || n > 64) { toast("Replicas: a whole number from 1 to 64", "bad"); return; }
    scale.disabled = true;
    try {
      await patch(`/admin/deployments/${encodeURIComponent(d.name)}`, { min_replicas: n, max_replicas: n });
      toast(`${d.name}: scaling to ${plural(n, "replica")}`);
      ctx.refresh();
    } catch (e) { toast(e.message, "bad"); scale.disabled = false; }
  }, { size: "sm", testid: `scale-${d.name}`, title: "Set a fixed replica count (autoscaling off)" });
  const range = button(null, () => rangeDialog(ctx, d), { size: "sm", kind: "ghost icon-only", iconName: "sliders", testid: `autoscale-${d.name}`, title: "Autoscale range…" });
  const remove = button(null, async () => {
    const ok = await confirmDialog({ title: `Remove ${d.name}?`, text: `Its ${plural(d.replicas, "replica")} stop after their current requests, and requests for ${d.name} get 404. Usage already metered stays in the ledger.`, confirmLabel: "Remove deployment", danger: true });
    if (!ok) return;
    try {
      await del(`/admin/deployments/${encodeURIComponent(d.name)}`);
      toast(`${d.name} removed`);
      ctx.refresh();
    } catch (e) { toast(e.message, "bad"); }
  }, { size: "sm", kind: "danger icon-only", iconName: "trash", testid: `remove-${d.name}`, title: `Remove ${d.name}…` });
  return h("div", { class: "btn-row nowrap" }, input, scale, range, remove);
}

function rangeDialog(ctx, d) {
  formDialog({
    title: `Autoscale ${d.name}`,
    intro: "The autoscaler keeps the replica count in this range: up after requests queue, down when one fewer would be at most half busy. A minimum of 0 scales to zero when idle (the next request waits for a cold start).",
    testid: "autoscale",
    fields: [
      { name: "min_replicas", label: "Minimum", type: "number", min: 0, max: 64, value: d.min_replicas, required: true },
      { name: "max_replicas", label: "Maximum", type: "number", min: 1, max: 64, value: d.max_replicas, required: true },
    ],
    submitLabel: "Save range",
    onSubmit: async (v) => {
      await patch(`/admin/deployments/${encodeURIComponent(d.name)}`, { min_replicas: Number(v.min_replicas), max_replicas: Number(v.max_replicas) });
      toast(`${d.name}: autoscaling ${v.min_replicas}–${v.max_replicas}`);
      ctx.refresh();
    },
  });
}

function details(d) {
  const replicas = dataTable([
    { key: "id", label: "Replica", render: (r) => h("span", { class: "mono" }, r.id) },
    { key: "state", label: "State", render: (r) => h("div", { class: "btn-row" }, badge(r.state), r.draining ? badge("draining", "warn") : null) },
    { key: "node", label: "Node" },
    { key: "devices", label: "Devices", value: (r) => r.devices.join(" "), render: (r) => (r.devices.length ? chips(r.devices, { max: 8 }) : h("span", { class: "muted" }, "CPU")) },
    { key: "served", label: "Served", num: true, render: (r) => int(r.served) },
    { key: "restarts", label: "Restarts", num: true, render: (r) => (r.restarts ? h("span", { class: "warn-text" }, int(r.restarts)) : "0") },
    { key: "endpoint", label: "Endpoint", render: (r) => (r.endpoint ? code(r.endpoint) : null) },
    { key: "last_error", label: "Last error", render: (r) => (r.last_error ? h("span", { class: "bad-text" }, r.last_error) : null) },
  ], d.replica_status, { dense: true, empty: { title: "No replicas", text: "Scaled to zero: the next request starts one." } });
  const caps = d.capabilities || {};
  const failure = d.failure ? h("div", { class: "stack" },
    notice("bad", d.failure.reason || "failed", d.failure.hint || null),
    d.failure.log_tail && d.failure.log_tail.length ? h("pre", { class: "pre" }, d.failure.log_tail.join("\n")) : null) : null;
  return h("div", { class: "stack" }, failure,
    h("div", { class: "grid-2" },
      kv([
        ["Engine", d.engine],
        d.model_path ? ["Model file", code(d.model_path)] : null,
        d.endpoint ? ["Endpoint", code(d.endpoint)] : null,
        d.upstream_model ? ["Upstream model", d.upstream_model] : null,
        ["Created", `${dateTime(d.created_at)} UTC (${relative(d.created_at)})`],
        d.rollout ? ["Rollout", `${d.rollout.state}: ${d.rollout.replaced} of ${d.rollout.of} replaced (${d.rollout.cause})${d.rollout.error ? " — " + d.rollout.error : ""}`] : null,
      ]),
      kv([
        ["Tool calls", caps.tool_calls || "—"],
        ["Inputs", ["text", caps.vision && "images", caps.audio && "audio"].filter(Boolean).join(", ")],
        ["Embeddings", caps.embeddings ? "yes" : "no"],
        ["Context", caps.context_tokens ? `${int(caps.context_tokens)} tokens` : "—"],
        ["Options", Object.keys(d.options || {}).length ? chips(Object.entries(d.options).map(([k, v]) => `${k}=${v}`), { max: 8 }) : h("span", { class: "muted" }, "defaults")],
      ])),
    h("div", { class: "section-title" }, "Replicas"), replicas);
}

function parseOptions(text) {
  const out = {};
  for (const line of text.split(/\n|,/).map((l) => l.trim()).filter(Boolean)) {
    const [k, ...rest] = line.split("=");
    const v = rest.join("=").trim();
    if (!k.trim() || !rest.length) throw new Error(`Options: "${line}" is not key=value`);
    out[k.trim()] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v === "true" ? true : v === "false" ? false : v;
  }
  return out;
}

function deployDialog(ctx) {
  formDialog({
    title: "Deploy a model",
    intro: "Check where it goes first: TokenMill places each replica on a node and devices that can hold it, and says why the others cannot.",
    testid: "deploy",
    wide: true,
    submitLabel: "Check placement",
    fields: [
      { name: "name", label: "Name", required: true, placeholder: "llama-3.1-8b", help: "The model name clients send in `model`." },
      { name: "engine", label: "Engine", type: "select", options: [["llamacpp", "llama.cpp (GGUF file)"], ["openai", "OpenAI-compatible endpoint"]], value: "llamacpp", required: true },
      { name: "model_path", label: "Model file", placeholder: "/models/model.gguf", help: "llama.cpp: a GGUF file on the node." },
      { name: "endpoint", label: "Endpoint", placeholder: "http://gpu-box:8000/v1", help: "OpenAI-compatible: vLLM, SGLang, MindIE…" },
      { name: "upstream_model", label: "Upstream model", placeholder: "Qwen/Qwen3-8B", help: "The name the endpoint knows it by." },
      { name: "replicas", label: "Replicas", type: "number", min: 0, max: 64, value: 1, required: true },
      { name: "min_replicas", label: "Autoscale minimum", type: "number", min: 0, max: 64 },
      { name: "max_replicas", label: "Autoscale maximum", type: "number", min: 1, max: 64 },
      { name: "options", label: "Engine options", type: "textarea", wide: true, placeholder: "parallel=4\nctx_per_slot=8192", help: "One key=value per line (docs/engines.md)." },
    ],
    onSubmit: async (v, step) => {
      const body = { name: v.name, engine: v.engine, replicas: Number(v.replicas || 1) };
      for (const k of ["model_path", "endpoint", "upstream_model"]) if (v[k]) body[k] = v[k];
      for (const k of ["min_replicas", "max_replicas"]) if (v[k] !== "") body[k] = Number(v[k]);
      const options = parseOptions(v.options || "");
      if (Object.keys(options).length) body.options = options;
      const plan = await post("/admin/deployments", body, { dry_run: "true" });
      const go = button("Deploy", async () => {
        go.disabled = true;
        try {
          await post("/admin/deployments", body);
          toast(`${body.name}: deploying`);
          step.close(true);
          ctx.refresh();
        } catch (e) { toast(e.message, "bad"); go.disabled = false; }
      }, { kind: "primary", testid: "deploy-confirm", disabled: plan.ok === false });
      return { show: placementView(plan), actions: [button("Back", () => step.back(), { testid: "deploy-back" }), go] };
    },
  });
}
