// The sessions list: pinned first, search and filters, paging, live status, and a create form.

import { all, api } from "./api.js";
import { attempt, field, h, options, statusBadge, when } from "./dom.js";

const PAGE = 20;
const POLL_MS = 3000;
const STATUSES = ["started", "active", "idle", "waitingfortoolresults", "paused"];

export async function sessionsPage(root) {
  const [agents, models] = await Promise.all([all("agents"), api("models")]);
  const agentName = new Map(agents.map((a) => [a.id, a.display_name || a.name]));
  const state = { offset: 0, search: "", status: "", agent_id: "", tag: "" };

  const search = h("input", { type: "search", name: "search" });
  const status = options(h("select", { name: "status" }),
    [["", "any status"], ...STATUSES.map((s) => [s, s])]);
  const agent = options(h("select", { name: "agent" }),
    [["", "any agent"], ...agents.map((a) => [a.id, a.display_name || a.name])]);
  const tag = h("input", { type: "text", name: "tag" });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter sessions" },
    field("Search", search), field("Status", status), field("Agent", agent), field("Tag", tag),
    h("button", { type: "submit" }, "Apply"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(state, {
      offset: 0, search: search.value.trim(), status: status.value, agent_id: agent.value,
      tag: tag.value.trim(),
    });
    refresh();
  });

  const pinnedBody = h("tbody");
  const body = h("tbody");
  const pinnedTable = table("Pinned sessions", pinnedBody);
  const mainTable = table("Sessions", body);
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const live = h("p", { class: "muted" }, "Statuses refresh every 3 s.");

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Sessions"), live),
    createForm(agents, models.data),
    filters, pinnedTable, mainTable, pager);

  let lastSeen = null;

  async function refresh() {
    const query = {
      search: state.search, status: state.status, agent_id: state.agent_id,
      tags: state.tag ? [state.tag] : undefined,
    };
    const [pinned, page] = await Promise.all([
      state.offset === 0 ? api("sessions", { query: { ...query, pinned: true, limit: 100 } }) : null,
      api("sessions", { query: { ...query, pinned: false, offset: state.offset, limit: PAGE } }),
    ]);
    // Redraw only what changed: a poll that finds the same page keeps the focus where it is.
    const seen = JSON.stringify([pinned?.data, page.data, page.total, state.offset]);
    if (seen === lastSeen) return;
    lastSeen = seen;
    if (pinned) {
      pinnedBody.replaceChildren(...pinned.data.map((s) => row(s, agentName, refresh)));
      pinnedTable.hidden = pinned.data.length === 0;
    } else {
      pinnedTable.hidden = true;
    }
    body.replaceChildren(...page.data.map((s) => row(s, agentName, refresh)));
    if (page.data.length === 0) {
      body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No sessions match.")));
    }
    const last = Math.min(state.offset + page.data.length, page.total);
    pager.replaceChildren(
      h("button", {
        type: "button", disabled: state.offset === 0,
        onclick: () => { state.offset = Math.max(0, state.offset - PAGE); refresh(); },
      }, "Previous"),
      h("span", {}, page.total ? `${state.offset + 1}–${last} of ${page.total}` : "0 sessions"),
      h("button", {
        type: "button", disabled: last >= page.total,
        onclick: () => { state.offset += PAGE; refresh(); },
      }, "Next"));
  }

  await refresh();
  // Live status: the list is polled while the tab is visible (cheap: one indexed page).
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") refresh().catch(() => {});
  }, POLL_MS);
  return () => clearInterval(timer);
}

function table(caption, body) {
  return h("table", { class: "list" }, h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ...["Title", "Status", "Agent", "Tags", "Updated", "Pin"].map(
      (name) => h("th", { scope: "col" }, name)))),
    body);
}

function row(session, agentName, refresh) {
  const title = session.title || session.preview || "(untitled)";
  const pin = h("button", {
    type: "button", class: "link", "aria-pressed": String(session.is_pinned),
    "aria-label": `${session.is_pinned ? "Unpin" : "Pin"} ${title}`,
    onclick: async () => {
      await api(`sessions/${session.id}/pin`, { method: session.is_pinned ? "DELETE" : "PUT" });
      refresh();
    },
  }, session.is_pinned ? "★" : "☆");
  return h("tr", { dataset: { sessionId: session.id } },
    h("td", {}, h("a", { href: `#/sessions/${session.id}` }, title)),
    h("td", {}, statusBadge(session.status)),
    h("td", {}, session.agent_id ? agentName.get(session.agent_id) ?? session.agent_id : "–"),
    h("td", {}, session.tags.map((t) => h("span", { class: "tag" }, t))),
    h("td", {}, when(session.updated_at)),
    h("td", {}, pin));
}

function createForm(agents, models) {
  const agent = options(h("select", { name: "agent_id" }),
    [["", "(no agent: the default harness)"], ...agents.map((a) => [a.id, a.display_name || a.name])]);
  const model = options(h("select", { name: "model_id" }),
    [["", "(the agent's or the default)"], ...models.map((m) => [m.id, `${m.display_name} · ${m.provider_name}`])]);
  const title = h("input", { type: "text", name: "title", maxlength: 200 });
  const problem = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "inline-form" },
    field("Agent", agent), field("Model", model), field("Title", title),
    h("button", { type: "submit" }, "Create session"), problem);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    if (agent.value) body.agent_id = agent.value;
    if (model.value) body.model_id = model.value;
    if (title.value.trim()) body.title = title.value.trim();
    const created = await attempt(problem, () => api("sessions", { method: "POST", body }));
    if (created) window.location.hash = `#/sessions/${created.id}`;
  });
  return h("details", { class: "card" }, h("summary", {}, "New session"), form);
}
