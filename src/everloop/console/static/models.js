// Models and providers: list, add a provider (its key is write-only: sent, never shown), add a
// model to a provider.

import { api } from "./api.js";
import { attempt, field, h, notify, options, when } from "./dom.js";

const DRIVERS = ["openai", "openai_completions", "anthropic", "llmsim"];

export async function modelsPage(root) {
  const providersBody = h("tbody");
  const modelsBody = h("tbody");
  const mProblemDefault = h("p", { class: "error", role: "alert" });
  const providerSelect = h("select", { name: "provider_id", required: true });

  async function refresh() {
    const [providers, models] = await Promise.all([api("providers"), api("models")]);
    providersBody.replaceChildren(...providers.data.map((p) => h("tr", {},
      h("td", {}, p.name), h("td", {}, p.driver), h("td", {}, p.base_url ?? "–"),
      h("td", {}, p.api_key_set ? "set" : "not set"), h("td", {}, p.status),
      h("td", {}, p.is_built_in ? "built-in" : when(p.created_at)))));
    const current = orgDefault(models.data);
    modelsBody.replaceChildren(...models.data.map((m) => h("tr", { dataset: { modelId: m.id } },
      h("td", {}, m.display_name), h("td", {}, h("code", {}, m.model_id)), h("td", {}, m.provider_name),
      h("td", {}, m.enabled ? "yes" : "no"),
      h("td", {}, m.profile?.limits?.context ? `${m.profile.limits.context} tokens` : "–"),
      h("td", {}, m.id === current?.id ? h("strong", { class: "default-model" }, "default")
        : h("button", { type: "button", class: "link", "aria-label": `Make ${m.display_name} the default`,
          onclick: () => makeDefault(m, models.data) }, "Make default")))));
    options(providerSelect, providers.data.map((p) => [p.id, p.name]), providerSelect.value);
  }

  const pName = h("input", { type: "text", name: "name", required: true });
  const driver = options(h("select", { name: "driver" }), DRIVERS.map((d) => [d, d]));
  const baseUrl = h("input", { type: "url", name: "base_url" });
  const key = h("input", { type: "password", name: "api_key", autocomplete: "new-password" });
  const pProblem = h("p", { class: "error", role: "alert" });
  const providerForm = h("form", { class: "inline-form" },
    field("Name", pName), field("Driver", driver), field("Base URL", baseUrl),
    field("API key", key, "Write-only: stored sealed, never shown again."),
    h("button", { type: "submit" }, "Add provider"), pProblem);
  providerForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: pName.value.trim(), driver: driver.value };
    if (baseUrl.value.trim()) body.base_url = baseUrl.value.trim();
    if (key.value) body.api_key = key.value;
    const created = await attempt(pProblem, () => api("providers", { method: "POST", body }));
    key.value = "";
    if (!created) return;
    providerForm.reset();
    notify(`Added provider ${created.name}.`);
    await refresh();
  });

  const modelId = h("input", { type: "text", name: "model_id", required: true });
  const displayName = h("input", { type: "text", name: "display_name" });
  const mProblem = h("p", { class: "error", role: "alert" });
  const modelForm = h("form", { class: "inline-form" },
    field("Provider", providerSelect), field("Model id (as the provider names it)", modelId),
    field("Display name", displayName), h("button", { type: "submit" }, "Add model"), mProblem);
  modelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { model_id: modelId.value.trim() };
    if (displayName.value.trim()) body.display_name = displayName.value.trim();
    const created = await attempt(mProblem, () => api(`providers/${providerSelect.value}/models`,
      { method: "POST", body }));
    if (!created) return;
    modelId.value = "";
    displayName.value = "";
    notify(`Added model ${created.display_name}.`);
    await refresh();
  });

  root.append(h("div", { class: "page-head" }, h("h1", {}, "Models and providers")),
    h("table", { class: "list" }, h("caption", {}, "Providers"),
      h("thead", {}, h("tr", {}, ...["Name", "Driver", "Base URL", "API key", "Status", "Added"].map(
        (n) => h("th", { scope: "col" }, n)))), providersBody),
    h("details", { class: "card" }, h("summary", {}, "Add a provider"), providerForm),
    h("table", { class: "list" }, h("caption", {}, "Models"),
      h("thead", {}, h("tr", {}, ...["Name", "Model id", "Provider", "Enabled", "Context", "Org default"].map(
        (n) => h("th", { scope: "col" }, n)))), modelsBody),
    h("details", { class: "card" }, h("summary", {}, "Add a model"), modelForm),
    mProblemDefault,
    h("p", { class: "muted" }, "A turn that names no model (nor does its session, agent or harness) ",
      "runs on the organization's default: the model marked ", h("code", {}, '"default": true'),
      " in its settings, else the built-in ", h("code", {}, "llmsim"), "."));
  await refresh();

  // The default is the model whose settings say `default: true` (the latest changed, if
  // several do): mark the chosen one last and unmark the others, so exactly one says so. The
  // built-in llmsim model is the default when none is marked.
  async function makeDefault(chosen, models) {
    await attempt(mProblemDefault, async () => {
      for (const m of models) {
        if (m.id !== chosen.id && m.settings?.default) {
          const { default: _dropped, ...settings } = m.settings;
          await api(`models/${m.id}`, { method: "PATCH", body: { settings } });
        }
      }
      if (!chosen.is_built_in) {
        await api(`models/${chosen.id}`, { method: "PATCH", body: { settings: { ...chosen.settings, default: true } } });
      }
      notify(`${chosen.display_name} is the organization's default model.`);
    });
    await refresh();
  }
}

function orgDefault(models) {
  const marked = models.filter((m) => m.settings?.default)
    .sort((a, b) => (a.updated_at + a.id < b.updated_at + b.id ? 1 : -1));
  return marked[0] ?? models.find((m) => m.is_built_in && m.provider_type === "llmsim") ?? null;
}
