// The sign-in screen: a user name and password, or a management key (tm-...).

import { post } from "./api.js";
import { h, clear, icon } from "./dom.js";

export function loginScreen({ message = null, onSignedIn }) {
  const username = h("input", { class: "input", id: "login-username", name: "username", testid: "login-username", autocomplete: "username", autofocus: true });
  const password = h("input", { class: "input", id: "login-password", name: "password", type: "password", testid: "login-password", autocomplete: "current-password" });
  const key = h("input", { class: "input mono", id: "login-key", name: "key", type: "password", testid: "login-key", autocomplete: "off", placeholder: "tm-…", spellcheck: "false" });
  const errorHost = h("div", { class: "login-error", role: "alert", testid: "login-error" });
  const submit = h("button", { type: "submit", class: "btn primary block", testid: "login-submit" }, "Sign in");
  if (message) errorHost.append(icon("alert"), message);

  const form = h("form", { class: "login-form", method: "post", action: "/console/api/login" },
    h("div", { class: "field" }, h("label", { for: "login-username" }, "User name"), username),
    h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"), password),
    h("div", { class: "divider" }, h("span", null, "or use a management key")),
    h("div", { class: "field" }, h("label", { for: "login-key" }, "API key"), key),
    errorHost,
    submit);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(errorHost);
    const k = key.value.trim();
    const body = k ? { key: k } : { username: username.value.trim(), password: password.value };
    if (!k && (!body.username || !body.password)) {
      errorHost.append(icon("alert"), "Enter a user name and password, or a key.");
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const session = await post("/console/api/login", body);
      onSignedIn(session);
    } catch (e) {
      errorHost.append(icon("alert"), e.message);
      password.value = "";
      key.value = "";
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });

  return h("div", { class: "login", testid: "login" },
    h("div", { class: "login-card" },
      h("div", { class: "login-brand" }, h("img", { src: "/console/static/logo.svg", alt: "", width: "36", height: "36" }),
        h("div", null, h("div", { class: "login-title" }, "TokenMill"), h("div", { class: "login-subtitle" }, "Sign in to the console"))),
      form),
    h("p", { class: "login-foot" }, "Keys and sessions follow the same access policy: you see what your role allows."));
}
