// Fleet: each node (CPU, memory, accelerators with their live telemetry, detector problems,
// drain state) and every replica instance the controllers wrote.

import { del, get, post } from "../api.js";
import { h } from "../dom.js";
import { dec, gb, int, pct, plural, relative } from "../format.js";
import { badge, button, card, chips, code, emptyState, kpi, kpiRow, meter, toast } from "../ui.js";
import { dataTable } from "../table.js";
import { formDialog } from "../dialog.js";

export async function render(ctx) {
  const fleet = await get("/admin/fleet");
  const nodes = fleet.nodes || [];
  const replicas = fleet.replicas || [];
  const drained = new Map((fleet.drained || []).map((d) => [d.node, d]));
  const devices = nodes.flatMap((n) => n.devices || []);
  const healthy = devices.filter((d) => d.healthy);
  const utils = healthy.map((d) => d.utilisation).filter((u) => typeof u === "number");
  const power = devices.map((d) => d.power_w).filter((p) => typeof p === "number");
  const ready = replicas.filter((r) => r.state === "ready").length;
  const stale = replicas.filter((r) => r.live === false).length;

  ctx.mount(
    kpiRow([
      kpi({ id: "nodes", label: "Nodes", value: int(nodes.length), raw: nodes.length, sub: drained.size ? `${drained.size} drained` : "none drained", tone: drained.size ? "warn" : null }),
      kpi({ id: "accelerators", label: "Accelerators healthy", value: `${healthy.length} / ${devices.length}`, raw: `${healthy.length}/${devices.length}`,
        tone: healthy.length < devices.length ? "bad" : null, sub: devices.length ? vendorsLine(devices) : "CPU only" }),
      kpi({ id: "device-util", label: "Accelerator utilisation", value: utils.length ? pct(utils.reduce((a, b) => a + b, 0) / utils.length) : "—",
        sub: utils.length ? `mean of ${plural(utils.length, "device")} reporting` : "no telemetry" }),
      kpi({ id: "power", label: "Accelerator power", value: power.length ? `${dec(power.reduce((a, b) => a + b, 0) / 1000, 2)} kW` : "—", sub: power.length ? "as the devices report it" : "no power telemetry" }),
      kpi({ id: "fleet-replicas", label: "Replica instances", value: `${ready} / ${replicas.length}`, raw: `${ready}/${replicas.length}`, sub: stale ? `${stale} not heartbeating` : "ready of all", tone: stale ? "warn" : null }),
    ]),
    nodes.length
      ? h("div", { class: "nodes", testid: "nodes" }, nodes.map((n) => nodeCard(ctx, n, replicas.filter((r) => r.node === n.name), drained.get(n.name))))
      : card(null, {}, emptyState({ title: "No nodes found yet", text: "Discovery runs when TokenMill starts; under --runtime ray every Ray node's agent reports here.", iconName: "fleet" })),
    card("Replica instances", { subtitle: "As the controllers wrote them; a replica whose controller stopped heartbeating is not live", cls: "flush" },
      dataTable([
        { key: "id", label: "Replica", render: (r) => h("span", { class: "mono" }, r.id) },
        { key: "deployment", label: "Deployment", render: (r) => h("span", { class: "cell-main" }, r.deployment) },
        { key: "node", label: "Node" },
        { key: "devices", label: "Devices", value: (r) => (r.devices || []).join(" "), render: (r) => ((r.devices || []).length ? chips(r.devices, { max: 8 }) : h("span", { class: "muted" }, "CPU")) },
        { key: "engine", label: "Engine" },
        { key: "state", label: "State", render: (r) => h("div", { class: "btn-row" }, badge(r.state), r.draining ? badge("draining", "warn") : null, r.live === false ? badge("stale", "bad") : null) },
        { key: "restarts", label: "Restarts", num: true, render: (r) => int(r.restarts) },
        { key: "heartbeat_age_s", label: "Heartbeat", unit: "age", num: true, render: (r) => (r.heartbeat_age_s === null || r.heartbeat_age_s === undefined ? null : `${dec(r.heartbeat_age_s, 1)} s`) },
        { key: "started_at", label: "Started", value: (r) => r.started_at, render: (r) => (r.started_at ? relative(r.started_at) : null) },
      ], replicas, { dense: true, filter: true, testid: "replica-instances", empty: { title: "No replicas running", text: "Deploy a model from Models; its replicas appear here with where they run." } })));
}

function vendorsLine(devices) {
  const by = {};
  for (const d of devices) by[d.vendor] = (by[d.vendor] || 0) + 1;
  return Object.entries(by).map(([v, n]) => `${n}× ${v}`).join(" · ");
}

function nodeCard(ctx, n, replicas, drain) {
  const write = ctx.can("deployments:write");
  const devs = n.devices || [];
  const problems = Object.entries(n.problems || {});
  const actions = [];
  if (write) {
    actions.push(drain
      ? button("Undrain", async () => {
          try { await del(`/admin/nodes/${encodeURIComponent(n.name)}/drain`); toast(`${n.name}: back in service`); ctx.refresh(); } catch (e) { toast(e.message, "bad"); }
        }, { size: "sm", testid: `undrain-${n.name}` })
      : button("Drain", () => drainDialog(ctx, n, replicas), { size: "sm", testid: `drain-${n.name}` }));
  }
  const head = h("div", { class: "spread" },
    h("div", { class: "node-main" },
      h("div", { class: "node-head" }, h("span", { class: "node-name" }, n.name), code(n.address),
        drain ? badge("drained", "warn") : badge(devs.some((d) => !d.healthy) ? "degraded" : "healthy"),
        Object.entries(n.labels || {}).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`))),
      h("div", { class: "node-facts" },
        h("span", null, n.cpu.model), h("span", null, `${int(n.cpu.cores)} logical CPUs`), h("span", null, `${gb(n.cpu.memory_gb)} RAM`),
        n.cpu.numa_nodes > 1 ? h("span", null, `${n.cpu.numa_nodes} NUMA nodes`) : null)),
    h("div", { class: "card-actions" }, actions));
  const grid = devs.length
    ? h("div", { class: "devices" }, devs.map(deviceTile))
    : h("div", { class: "muted" }, "No accelerators: replicas run on the CPU.");
  return h("section", { class: "card", testid: `node-${n.name}` }, h("div", { class: "card-body stack" },
    head,
    drain ? h("div", { class: "alert alert-warn" }, h("div", { class: "alert-body" }, h("strong", null, "Drained"), h("div", null, `${drain.reason || "no reason given"}${drain.at ? ` · ${relative(drain.at)}` : ""}. Nothing new is placed here.`))) : null,
    grid,
    h("div", { class: "row" }, h("span", { class: "muted" }, "Replicas here:"), replicas.length ? chips(replicas.map((r) => r.id), { max: 6 }) : h("span", { class: "muted" }, "none"),
      (n.models_cached || []).length ? [h("span", { class: "muted" }, "· Models on disk:"), chips(n.models_cached, { max: 4 })] : null),
    problems.length ? h("div", { class: "cell-sub" }, "Detectors: ", problems.map(([k, v]) => `${k}: ${v}`).join(" · ")) : null));
}

function deviceTile(d) {
  const idle = d.healthy && (d.utilisation === 0 || d.utilisation === null);
  const mem = d.memory_used_gb !== null && d.memory_used_gb !== undefined ? d.memory_used_gb / d.memory_gb : null;
  return h("div", { class: ["device", !d.healthy && "unhealthy", idle && "idle"], testid: `device-${d.resource}-${d.index}`, title: `${d.model}${d.driver ? " · driver " + d.driver : ""}` },
    h("div", { class: "device-top" }, h("span", null, `${d.resource} ${d.index}`), d.healthy ? badge("ok") : badge("unhealthy", "bad")),
    h("div", { class: "device-model" }, shortModel(d.model)),
    d.healthy ? [
      meter(d.utilisation, { label: d.utilisation === null || d.utilisation === undefined ? "—" : pct(d.utilisation, 0) }),
      h("div", { class: "device-stats" }, h("span", null, "memory"), h("span", null, mem === null ? `${gb(d.memory_gb)}` : `${dec(d.memory_used_gb, 0)} / ${dec(d.memory_gb, 0)} GB`)),
      h("div", { class: "device-stats" },
        h("span", null, d.power_w !== null && d.power_w !== undefined ? `${int(d.power_w)} W` : "— W"),
        h("span", null, d.temperature_c !== null && d.temperature_c !== undefined ? `${int(d.temperature_c)} °C` : "")),
    ] : h("div", { class: "bad-text" }, d.health));
}

function shortModel(m) {
  return String(m || "").replace(/^(NVIDIA|AMD|Huawei|Intel)\s+/i, "");
}

function drainDialog(ctx, n, replicas) {
  formDialog({
    title: `Drain ${n.name}`,
    intro: `Nothing new is placed on ${n.name}, and its ${plural(replicas.length, "replica")} move to other nodes one at a time (each new one ready before the old one stops).`,
    testid: "drain",
    fields: [{ name: "reason", label: "Reason", value: "maintenance", required: true, wide: true }],
    submitLabel: "Drain node",
    onSubmit: async (v) => {
      await post(`/admin/nodes/${encodeURIComponent(n.name)}/drain`, { reason: v.reason });
      toast(`${n.name}: draining`);
      ctx.refresh();
    },
  });
}
