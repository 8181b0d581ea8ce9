// The console's shell: sign-in, the hash router and the navigation.

import { api, setUnauthorizedHandler, token } from "./api.js";
import { field, h, notify } from "./dom.js";
import { agentEditorPage, agentsPage, harnessEditorPage } from "./agents.js";
import { modelsPage } from "./models.js";
import { sessionPage } from "./session.js";
import { sessionsPage } from "./sessions.js";

const ROUTES = [
  [/^#\/sessions\/([^/]+)$/, sessionPage, "sessions"],
  [/^#\/sessions$/, sessionsPage, "sessions"],
  [/^#\/agents\/new$/, (main) => agentEditorPage(main, null), "agents"],
  [/^#\/agents\/([^/]+)$/, agentEditorPage, "agents"],
  [/^#\/agents$/, agentsPage, "agents"],
  [/^#\/harnesses\/new$/, (main) => harnessEditorPage(main, null), "agents"],
  [/^#\/harnesses\/([^/]+)$/, harnessEditorPage, "agents"],
  [/^#\/models$/, modelsPage, "models"],
];

let cleanup = null;
let signInReason = null;

function main() {
  return document.getElementById("main");
}

function leavePage() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // A page that fails to clean up must not stop the next one from rendering.
    }
  }
  cleanup = null;
}

let renders = 0;

async function render() {
  leavePage();
  notify("");
  const number = ++renders;
  // Each render draws into its own container: a slower, older render that finishes late
  // draws into a detached one and is cleaned up at once.
  const view = h("div");
  main().replaceChildren(view);
  const signedIn = Boolean(token.get());
  document.getElementById("nav").hidden = !signedIn;
  if (!signedIn) {
    signInPage(view);
    return;
  }
  const hash = window.location.hash || "#/sessions";
  for (const [pattern, page, section] of ROUTES) {
    const match = pattern.exec(hash);
    if (!match) continue;
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.dataset.section === section) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    try {
      const done = (await page(view, ...match.slice(1).map(decodeURIComponent))) ?? null;
      if (number === renders) cleanup = done;
      else done?.();
    } catch (error) {
      if (error?.status !== 401) view.append(h("p", { class: "error", role: "alert" }, error.message));
    }
    return;
  }
  window.location.hash = "#/sessions";
}

function signInPage(root) {
  const input = h("input", {
    type: "password", name: "token", autocomplete: "off", required: true, spellcheck: "false",
  });
  const problem = h("p", { class: "error", role: "alert", id: "sign-in-reason" },
    signInReason ?? "");
  const form = h("form", { class: "card narrow", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", {}, "Paste an everloop API token (", h("code", {}, "everloop token create"),
      " or the admin token in the data directory). It is kept in this tab's session storage only."),
    problem,
    field("API token", input),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    try {
      await api("sessions", { query: { limit: 1 } });
    } catch (error) {
      // A 401 already came back here through the unauthorized handler, with its reason.
      if (error.status !== 401) {
        token.clear();
        problem.textContent = `Cannot sign in: ${error.message}`;
      }
      return;
    }
    signInReason = null;
    if (!window.location.hash || window.location.hash === "#/sign-in") {
      window.location.hash = "#/sessions";
    } else {
      render();
    }
  });
  root.append(form);
  input.focus();
}

setUnauthorizedHandler((error) => {
  token.clear();
  signInReason = `The API refused the token: ${error.message} (${error.code})`;
  render();
});

document.getElementById("sign-out").addEventListener("click", () => {
  token.clear();
  signInReason = null;
  render();
});

window.addEventListener("hashchange", render);
render();
