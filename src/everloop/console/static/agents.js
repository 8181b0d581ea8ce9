// Agents: the list, and an editor (prompt, model, capabilities with config forms from their
// JSON schemas, network access), a preview of what a draft would run as, and versions with a
// diff and rollback.

import { all, api } from "./api.js";
import { attempt, field, h, json, notify, options, when } from "./dom.js";
import { schemaForm } from "./schema_form.js";

export async function agentsPage(root) {
  const [agents, harnesses] = await Promise.all([all("agents"), api("harnesses")]);
  const harnessName = new Map(harnesses.data.map((x) => [x.id, x.display_name || x.name]));
  const head = (names) => h("thead", {}, h("tr", {}, ...names.map((n) => h("th", { scope: "col" }, n))));
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Agents and harnesses"),
      h("a", { class: "button", href: "#/agents/new" }, "New agent"),
      h("a", { class: "button", href: "#/harnesses/new" }, "New harness")),
    h("table", { class: "list" }, h("caption", {}, "Agents"),
      head(["Name", "Harness", "Model", "Capabilities", "Updated"]),
      h("tbody", {}, agents.length ? agents.map((a) => h("tr", {},
        h("td", {}, h("a", { href: `#/agents/${a.id}` }, a.display_name || a.name)),
        h("td", {}, harnessName.get(a.harness_id) ?? a.harness_id),
        h("td", {}, a.default_model_id ?? "default"),
        h("td", {}, a.capabilities.map((c) => c.ref).join(", ") || "–"),
        h("td", {}, when(a.updated_at))))
        : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No agents yet.")))),
    h("table", { class: "list" }, h("caption", {}, "Harnesses"),
      head(["Name", "Built on", "Capabilities", "Kind"]),
      h("tbody", {}, harnesses.data.map((x) => h("tr", {},
        h("td", {}, h("a", { href: `#/harnesses/${x.id}` }, x.display_name || x.name)),
        h("td", {}, x.parent_harness_id ? harnessName.get(x.parent_harness_id) ?? x.parent_harness_id : "–"),
        h("td", {}, x.capabilities.map((c) => c.ref).join(", ") || "–"),
        h("td", {}, x.is_built_in ? "built-in (read-only)" : "custom"))))));
}

export function harnessEditorPage(root, harnessId) {
  return editorPage(root, "harnesses", harnessId);
}

export function agentEditorPage(root, agentId) {
  return editorPage(root, "agents", agentId);
}

// The editor of an agent (kind "agents") or a harness ("harnesses"): the same fields but for
// the base it builds on, the agent's client-side tools and versions; built-in harnesses are
// shown read-only.
async function editorPage(root, kind, id) {
  const isAgent = kind === "agents";
  const noun = isAgent ? "agent" : "harness";
  const [agent, capabilities, models, harnesses] = await Promise.all([
    id ? api(`${kind}/${id}`) : null,
    all("capabilities"),
    api("models"),
    api("harnesses"),
  ]);
  const readOnly = Boolean(agent?.is_built_in);
  const bases = harnesses.data.filter((x) => x.id !== agent?.id)
    .map((x) => [x.id, x.display_name || x.name]);
  const base = options(h("select", { name: isAgent ? "harness_id" : "parent_harness_id" }),
    [["", isAgent ? "(the default harness)" : "(none)"], ...bases],
    (isAgent ? agent?.harness_id : agent?.parent_harness_id) ?? "");
  const tools = h("textarea", { name: "tools", rows: 4, spellcheck: "false" },
    agent?.tools?.length ? json(agent.tools) : "");
  const name = h("input", { type: "text", name: "name", required: true, value: agent?.name ?? "" });
  const displayName = h("input", { type: "text", name: "display_name", value: agent?.display_name ?? "" });
  const description = h("input", { type: "text", name: "description", value: agent?.description ?? "" });
  const prompt = h("textarea", { name: "system_prompt", rows: 8, required: isAgent }, agent?.system_prompt ?? "");
  const model = options(h("select", { name: "default_model_id" }),
    [["", "(the organization's default)"], ...models.data.map((m) => [m.id, `${m.display_name} · ${m.provider_name}`])],
    agent?.default_model_id ?? "");
  const allowed = h("textarea", { name: "network_allowed", rows: 2 },
    (agent?.network_access?.allowed ?? []).join("\n"));
  const blocked = h("textarea", { name: "network_blocked", rows: 2 },
    (agent?.network_access?.blocked ?? []).join("\n"));
  const chosen = new Map((agent?.capabilities ?? []).map((c) => [c.ref, c.config ?? {}]));
  const picks = capabilities.filter((c) => c.status !== "retired").map((capability) => {
    const box = h("input", { type: "checkbox", name: "capability", value: capability.id, checked: chosen.has(capability.id) });
    const form = schemaForm(capability.config_schema, chosen.get(capability.id));
    form.node.hidden = !box.checked || form.empty;
    box.addEventListener("change", () => { form.node.hidden = !box.checked || form.empty; });
    const item = h("li", { class: "capability" },
      h("label", { class: "check" }, box, " ", h("strong", {}, capability.name), " ",
        h("code", {}, capability.id)),
      h("p", { class: "muted" }, capability.description), form.node);
    return { capability, box, form, item };
  });
  const problem = h("p", { class: "error", role: "alert" });
  const preview = h("div", { class: "preview", "aria-live": "polite" });

  function body() {
    const lines = (area) => area.value.split("\n").map((l) => l.trim()).filter(Boolean);
    const caps = picks.filter((p) => p.box.checked).map((p) => {
      const config = p.form.value();
      return Object.keys(config).length ? { ref: p.capability.id, config } : { ref: p.capability.id };
    });
    const out = { capabilities: caps };
    if (isAgent || prompt.value) out.system_prompt = prompt.value;
    if (model.value || agent) out.default_model_id = model.value || null;
    if (base.value) out[isAgent ? "harness_id" : "parent_harness_id"] = base.value;
    if (isAgent) out.tools = tools.value.trim() ? JSON.parse(tools.value) : [];
    if (lines(allowed).length || lines(blocked).length) {
      out.network_access = { allowed: lines(allowed), blocked: lines(blocked) };
    } else if (agent?.network_access) {
      out.network_access = null; // emptied: no restriction of its own any more
    }
    return out;
  }

  const form = h("form", { class: "card editor", "aria-labelledby": "agent-title" },
    field("Name", name, "Unique in the organization; letters, digits, - and _."),
    field("Display name", displayName), field("Description", description),
    field("System prompt", prompt), field("Default model", model),
    field(isAgent ? "Harness" : "Built on harness", base),
    isAgent ? field("Client-side tools (a JSON list of tool definitions)", tools,
      'e.g. [{"type": "client_side", "name": "get_location", "description": "…", "parameters": {"type": "object"}}]')
      : null,
    h("fieldset", {}, h("legend", {}, "Capabilities"), h("ul", { class: "capabilities" }, picks.map((p) => p.item))),
    h("fieldset", {}, h("legend", {}, "Network access"),
      field("Allowed hosts (one a line; empty: no restriction)", allowed), field("Blocked hosts", blocked)),
    h("div", { class: "row" }, readOnly ? h("p", { class: "muted" }, "Built-in: read-only.")
      : h("button", { type: "submit" }, agent ? "Save" : `Create ${noun}`),
      h("button", { type: "button", id: "preview-agent", onclick: showPreview }, "Preview context")),
    problem);

  async function showPreview() {
    const view = await attempt(problem, () => api(`${kind}/preview`, { method: "POST", body: body() }));
    if (!view) return;
    preview.replaceChildren(h("h2", {}, "What this draft would run as"),
      h("p", {}, `About ${view.estimated_prompt_tokens} prompt tokens (system prompt and tools); `,
        `model ${view.model?.model_id ?? view.model?.id ?? "default"}.`),
      h("p", {}, "Tools: ", (view.tools ?? []).map((t) => t.name).join(", ") || "none"),
      h("details", {}, h("summary", {}, "System prompt as sent"), h("pre", {}, view.system_prompt ?? "")));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const saved = await attempt(problem, () => {
      const payload = { ...body(), name: name.value.trim() };
      if (displayName.value.trim()) payload.display_name = displayName.value.trim();
      if (description.value.trim()) payload.description = description.value.trim();
      return agent ? api(`${kind}/${agent.id}`, { method: "PATCH", body: payload })
        : api(kind, { method: "POST", body: payload });
    });
    if (!saved) return;
    if (!agent) {
      window.location.hash = `#/${kind}/${saved.id}`;
      return;
    }
    notify(`Saved ${noun} ${saved.name}.`);
    await versions?.draw();
  });

  root.append(h("div", { class: "page-head" },
    h("h1", { id: "agent-title" }, agent ? `${isAgent ? "Agent" : "Harness"} ${agent.display_name || agent.name}`
      : `New ${noun}`)),
  h("p", {}, h("a", { href: "#/agents" }, "← Agents and harnesses")), form, preview);
  if (readOnly) form.querySelectorAll("input, select, textarea").forEach((control) => { control.disabled = true; });
  const versions = agent && isAgent ? await versionsSection(agent) : null;
  if (versions) root.append(versions.section);
}

async function versionsSection(agent) {
  const section = h("section", { class: "card", "aria-labelledby": "versions-title" });
  const problem = h("p", { class: "error", role: "alert" });
  const diff = h("div", { class: "diff", "aria-live": "polite" });
  async function draw() {
    const versions = await api(`agents/${agent.id}/versions`);
    const pick = (label, index) => options(h("select", { name: label }),
      versions.map((v) => [v.id, `v${v.version} (${v.change_kind})`]), versions[index]?.id);
    const from = pick("from", 1);
    const to = pick("to", 0);
    const summary = h("input", { type: "text", name: "summary" });
    section.replaceChildren(h("h2", { id: "versions-title" }, "Versions"),
      h("form", { class: "row", onsubmit: async (event) => {
        event.preventDefault();
        if (await attempt(problem, () => api(`agents/${agent.id}/versions`,
          { method: "POST", body: summary.value ? { summary: summary.value } : {} }))) draw();
      } }, field("Summary", summary), h("button", { type: "submit" }, "Save as a version")),
      h("ul", {}, versions.map((v) => h("li", {},
        `v${v.version} · ${v.change_kind} · ${when(v.created_at)}`,
        v.id === agent.default_version_id ? " (default) " : " ",
        h("button", { type: "button", class: "link", onclick: async () => {
          if (await attempt(problem, () => api(`agents/${agent.id}/versions/${v.id}/rollback`,
            { method: "POST", body: { save_version: true, summary: `rollback to v${v.version}` } }))) {
            window.dispatchEvent(new HashChangeEvent("hashchange"));
            notify(`Rolled back to v${v.version}.`);
          }
        } }, `Roll back to v${v.version}`)))),
      versions.length > 1 ? h("form", { class: "row", onsubmit: async (event) => {
        event.preventDefault();
        const found = await attempt(problem, () => api(`agents/${agent.id}/versions/${from.value}/diff/${to.value}`));
        if (found) diff.replaceChildren(diffView(found.authored_diff));
      } }, field("From", from), field("To", to), h("button", { type: "submit" }, "Show diff")) : null,
      diff, problem);
  }
  await draw();
  return { section, draw };
}

function diffView(changes) {
  const entries = Object.entries(changes ?? {});
  if (!entries.length) return h("p", { class: "muted" }, "No differences.");
  return h("table", { class: "list diff-table" },
    h("thead", {}, h("tr", {}, ...["Field", "Before", "After"].map((n) => h("th", { scope: "col" }, n)))),
    h("tbody", {}, entries.map(([key, change]) => h("tr", {}, h("th", { scope: "row" }, key),
      h("td", { class: "before" }, h("pre", {}, json(change?.from ?? change?.old ?? change?.[0] ?? null))),
      h("td", { class: "after" }, h("pre", {}, json(change?.to ?? change?.new ?? change?.[1] ?? change)))))));
}
