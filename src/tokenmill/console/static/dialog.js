// Modal dialogs: a form whose submit calls the API (errors shown in place, the dialog stays
// open), and a confirmation for anything destructive.

import { h, clear, icon, rich } from "./dom.js";
import { button } from "./ui.js";

function openDialog(testid, ...content) {
  const dlg = h("dialog", { class: "modal", testid }, content);
  document.body.append(dlg);
  dlg.addEventListener("close", () => dlg.remove());
  dlg.showModal();
  return dlg;
}

// One form field. type: text | number | password | select | textarea | checkbox | datetime
export function field(f) {
  const id = `f-${f.name}-${Math.random().toString(36).slice(2, 7)}`;
  let input;
  const common = { id, name: f.name, testid: f.testid || `field-${f.name}`, required: !!f.required, disabled: !!f.disabled };
  if (f.type === "select") {
    input = h("select", { ...common, class: "input" },
      (f.options || []).map((o) => {
        const [value, label] = Array.isArray(o) ? o : [o, o];
        return h("option", { value }, label);
      }));
    if (f.value !== undefined && f.value !== null) input.value = f.value;
  } else if (f.type === "textarea") {
    input = h("textarea", { ...common, class: "input", rows: String(f.rows || 3), placeholder: f.placeholder || "" });
    if (f.value) input.value = f.value;
  } else if (f.type === "checkbox") {
    input = h("input", { ...common, type: "checkbox", checked: !!f.value });
    return h("label", { class: "check", for: id }, input, h("span", null, f.label), f.help ? h("span", { class: "help" }, f.help) : null);
  } else {
    const type = f.type === "datetime" ? "datetime-local" : f.type || "text";
    input = h("input", { ...common, class: "input", type, placeholder: f.placeholder || "", autocomplete: f.autocomplete || "off",
      min: f.min !== undefined ? String(f.min) : null, max: f.max !== undefined ? String(f.max) : null,
      step: f.step !== undefined ? String(f.step) : null, pattern: f.pattern || null });
    if (f.value !== undefined && f.value !== null) input.value = String(f.value);
  }
  return h("div", { class: ["field", f.wide && "wide"] },
    h("label", { for: id }, f.label, f.unit ? h("span", { class: "unit" }, f.unit) : null, f.required ? null : h("span", { class: "optional" }, "optional")),
    input,
    f.help ? h("div", { class: "help" }, rich(f.help)) : null);
}

function values(form, fields) {
  const out = {};
  for (const f of fields) {
    const el = form.elements.namedItem(f.name);
    if (!el) continue;
    if (f.type === "checkbox") out[f.name] = el.checked;
    else out[f.name] = el.value.trim();
  }
  return out;
}

// Resolves with whatever onSubmit returned (or null when cancelled). onSubmit(values, step)
// may return {show: node, actions?: [buttons]} to replace the form with a result the user must
// see (a new key's secret, a placement to confirm); step.close(v) and step.back() end or undo
// that second step.
export function formDialog({ title, intro = null, fields, submitLabel = "Save", onSubmit, testid = "dialog", submitTestid = null, extra = null, wide = false }) {
  return new Promise((resolve) => {
    const errorHost = h("div", { class: "form-error", role: "alert" });
    const submit = button(submitLabel, null, { kind: "primary", type: "submit", testid: submitTestid || `${testid}-submit` });
    const cancel = button("Cancel", () => { dlg.close(); resolve(null); }, { testid: `${testid}-cancel` });
    const form = h("form", { class: "form", method: "dialog", novalidate: false },
      intro ? h("p", { class: "form-intro" }, rich(intro)) : null,
      h("div", { class: "form-grid" }, fields.map(field)),
      extra,
      errorHost,
      h("div", { class: "modal-foot" }, cancel, submit));
    const body = h("div", { class: "modal-body" }, form);
    const dlg = openDialog(testid,
      h("div", { class: "modal-head" }, h("h2", null, title),
        h("button", { type: "button", class: "btn ghost sm", "aria-label": "Close", onclick: () => { dlg.close(); resolve(null); } }, icon("x"))),
      body);
    if (wide) dlg.classList.add("wide");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clear(errorHost);
      submit.disabled = true;
      try {
        const close = (v) => { dlg.close(); resolve(v ?? result); };
        const back = () => { clear(body, form); submit.disabled = false; };
        const result = await onSubmit(values(form, fields), { form, close, back, body });
        if (result && result.show) {
          const actions = result.actions || [button("Done", () => close(result), { kind: "primary", testid: `${testid}-done` })];
          clear(body, result.show, h("div", { class: "modal-foot" }, actions));
          dlg.addEventListener("close", () => resolve(result), { once: true });
        } else {
          dlg.close();
          resolve(result ?? true);
        }
      } catch (e) {
        clear(errorHost, icon("alert"), e.message || String(e));
        submit.disabled = false;
      }
    });
    dlg.addEventListener("cancel", () => resolve(null));
  });
}

export function confirmDialog({ title, text, confirmLabel = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const done = (v) => { dlg.close(); resolve(v); };
    const dlg = openDialog("confirm",
      h("div", { class: "modal-head" }, h("h2", null, title)),
      h("div", { class: "modal-body" }, h("p", { class: "confirm-text" }, text),
        h("div", { class: "modal-foot" },
          button("Cancel", () => done(false), { testid: "confirm-cancel" }),
          button(confirmLabel, () => done(true), { kind: danger ? "danger-solid" : "primary", testid: "confirm-ok" }))));
    dlg.addEventListener("cancel", () => resolve(false));
  });
}

// A read-only dialog (invoice lines, placement details).
export function infoDialog(title, content, testid = "info") {
  const dlg = openDialog(testid,
    h("div", { class: "modal-head" }, h("h2", null, title),
      h("button", { type: "button", class: "btn ghost sm", "aria-label": "Close", onclick: () => dlg.close() }, icon("x"))),
    h("div", { class: "modal-body" }, content));
  dlg.classList.add("wide");
  return dlg;
}
