// A deployment's placement as POST /admin/deployments?dry_run=true explains it: where each
// replica would go and why, what it needs, and why the other nodes and devices were refused.

import { h } from "./dom.js";
import { dec, gb } from "./format.js";
import { badge, chips, kv, notice } from "./ui.js";
import { dataTable } from "./table.js";

export function placementView(plan) {
  if (!plan.demand && plan.ok !== false) { // an attached endpoint: nothing of ours to place
    return h("div", { class: "stack", testid: "placement" },
      notice("ok", "Nothing to place", plan.note || "This engine serves from an endpoint elsewhere; TokenMill health-checks it and relays to it."),
      h("p", { class: "muted" }, "Deploy to attach it: requests for this model are queued, metered and billed like any other."));
  }
  const d = plan.demand || {};
  const placed = (plan.replicas || []).filter((r) => r.node);
  const head = plan.ok
    ? notice("ok", `Fits: ${placed.length} of ${d.replicas ?? placed.length} replicas placed`, "Nothing is created until you deploy.")
    : notice("bad", "Does not fit", plan.reason || "No node can hold this deployment.");
  const demand = kv([
    ["Needs", d.resource ? `${d.resource}${d.cpu_fallback ? " (CPU fallback)" : ""}` : null],
    d.weights_gb !== undefined ? ["Memory per replica", `${gb(d.weights_gb)} weights + ${gb(d.kv_gb)} KV + ${gb(d.overhead_gb)} overhead`] : null,
    d.tensor_parallel ? ["Tensor parallel", String(d.tensor_parallel)] : null,
    d.strategy ? ["Strategy", d.strategy] : null,
    d.accelerators && d.accelerators.length ? ["Accelerators", chips(d.accelerators)] : null,
    d.model_file ? ["Model file", h("span", { class: "mono" }, d.model_file)] : null,
  ]);
  const notes = d.notes && d.notes.length ? h("ul", { class: "notes" }, d.notes.map((n) => h("li", null, n))) : null;
  const replicas = dataTable([
    { key: "replica", label: "#", num: true },
    { key: "node", label: "Node", render: (r) => r.node ? h("span", { class: "cell-main" }, r.node) : badge("unplaced", "bad") },
    { key: "target", label: "Target", render: (r) => r.target || null },
    { key: "devices", label: "Devices", value: (r) => (r.devices || []).join(" "), render: (r) => (r.devices && r.devices.length ? chips(r.devices, { max: 8 }) : r.node ? "CPU" : null) },
    { key: "gb_per_device", label: "Memory", unit: "GB/device", num: true, render: (r) => (r.gb_per_device !== undefined ? dec(r.gb_per_device, 1) : null) },
    { key: "score", label: "Score", num: true, render: (r) => (r.score !== undefined ? dec(r.score, 1) : null) },
    { key: "cached", label: "Model cached", render: (r) => (r.node ? (r.cached ? "yes" : "no") : null) },
    { key: "why", label: "Why / also fits", cls: "wrap", value: (r) => r.reason || "", render: (r) => r.reason ? h("span", { class: "bad-text" }, r.reason)
      : r.also_fit && r.also_fit.length ? r.also_fit.map((o) => `${o.node} (${dec(o.score, 1)})`).join(", ") : h("span", { class: "muted" }, "only choice") },
  ], plan.replicas || [], { empty: { title: "No replicas to place" }, dense: true, testid: "placement-replicas" });
  const rejections = (plan.rejections || []).length
    ? dataTable([
        { key: "node", label: "Node" },
        { key: "device", label: "Device" },
        { key: "reason", label: "Refused because", cls: "wrap" },
      ], plan.rejections, { dense: true, testid: "placement-rejections" })
    : h("p", { class: "muted" }, "No node or device was refused.");
  return h("div", { class: "stack", testid: "placement" }, head,
    h("div", { class: "section-title" }, "What it needs"), demand, notes,
    h("div", { class: "section-title" }, "Where each replica goes"), replicas,
    h("div", { class: "section-title" }, "Refused"), rejections);
}
