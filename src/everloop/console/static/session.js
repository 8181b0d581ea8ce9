// One session: the chat, the live stream feeding it and the timeline, usage, cancel, and the
// files / key-value / SQL tabs when the session has those features.

import { api } from "./api.js";
import { Chat } from "./chat.js";
import { attempt, cost, field, h, shortId, statusBadge, tokens } from "./dom.js";
import { PendingInput } from "./human_input.js";
import { EventStream } from "./sse.js";
import { storageTabs } from "./storage.js";
import { Timeline } from "./timeline.js";

const RUNNING = new Set(["started", "active", "waitingfortoolresults"]);
const TURN_ENDS = ["turn.completed", "turn.failed", "turn.cancelled"];
const MESSAGES_PAGE = 100;

export async function sessionPage(root, sessionId) {
  let session = await api(`sessions/${sessionId}`);
  const [model, agent] = await Promise.all([
    session.model_id ? api(`models/${session.model_id}`).catch(() => null) : null,
    session.agent_id ? api(`agents/${session.agent_id}`).catch(() => null) : null,
  ]);
  const modelCost = model?.profile?.cost ?? null;

  const chat = new Chat(sessionId);
  const timeline = new Timeline(sessionId);
  const human = new PendingInput(sessionId);
  const title = h("h1", {}, session.title || "Session");
  const statusSlot = h("span", { id: "session-status" });
  const streamState = h("span", { class: "stream-state", id: "stream-state", "aria-live": "polite" }, "connecting");
  const usage = h("p", { class: "usage", id: "session-usage" });
  const turnRows = h("tbody");
  const cancel = h("button", { type: "button", class: "danger", id: "cancel-turn" }, "Cancel turn");
  const input = h("textarea", { name: "message", rows: 3, required: true });
  const sendProblem = h("p", { class: "error", role: "alert" });
  const composer = h("form", { class: "composer", "aria-label": "Send a message" },
    field("Message", input), h("div", { class: "row" }, h("button", { type: "submit" }, "Send"), cancel),
    sendProblem);

  // Subagents: the parent this session was spawned by, and the children it spawned.
  const family = h("nav", { class: "family", "aria-label": "Subagents" });
  async function drawFamily() {
    const children = await api("sessions", { query: { parent_session_id: sessionId, limit: 100 } });
    family.replaceChildren(
      session.parent_session_id ? h("span", {}, "Spawned by ",
        h("a", { href: `#/sessions/${session.parent_session_id}` }, shortId(session.parent_session_id)),
        session.subagent_name ? ` as ${session.subagent_name}` : "", ". ") : "",
      children.data.length ? h("span", {}, "Subagents: ", children.data.map((child, i) => [i ? ", " : "",
        h("a", { href: `#/sessions/${child.id}` }, child.subagent_name || child.title || shortId(child.id)),
        ` (${child.subagent_status ?? child.status})`])) : "");
    family.hidden = !session.parent_session_id && !children.data.length;
  }

  function show(next) {
    session = next;
    if (session.title) title.textContent = session.title;
    statusSlot.replaceChildren(statusBadge(session.status));
    cancel.hidden = !RUNNING.has(session.status);
    const price = cost(session.usage, modelCost);
    usage.textContent = `Usage: ${tokens(session.usage)}${price ? ` · ${price}` : ""}`;
  }

  const turnsShown = new Set();
  function turnRow(event) {
    const id = `turn-${event.context?.turn_id ?? event.id}`;
    if (turnsShown.has(id)) return;
    turnsShown.add(id);
    const data = event.data;
    const price = cost(data.usage, modelCost);
    turnRows.prepend(h("tr", { id },
      h("td", {}, shortId(event.context?.turn_id)), h("td", {}, event.type.replace("turn.", "")),
      h("td", {}, data.duration_ms !== undefined ? `${data.duration_ms} ms` : "–"),
      h("td", {}, tokens(data.usage)), h("td", {}, price ?? "–")));
  }

  cancel.addEventListener("click", async () => {
    const done = await attempt(sendProblem, () => api(`sessions/${sessionId}/cancel`, { method: "POST" }));
    if (done) show(await api(`sessions/${sessionId}`));
  });
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const posted = await attempt(sendProblem, () => api(`sessions/${sessionId}/messages`, {
      method: "POST",
      body: {
        message: { role: "user", content: [{ type: "text", text }] },
        // The console shows ask_user questions, so the agent may ask them.
        controls: { hints: { ask_user: true } },
      },
    }));
    if (!posted) return;
    input.value = "";
    chat.message(posted);
    // No status here: the stream's events say it, in order (the answer to this POST can come
    // after the turn already waits for a tool result, which "active" would hide).
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });

  // One read of the session at a time; a refresh asked for while one is in flight runs again
  // after it, so the last read always starts after the last event that asked for it (a read
  // begun before `session.idled` committed would otherwise leave the page saying "active").
  let refreshing = null;
  let again = false;
  // Events set the status as they arrive; a read that began before the latest of them keeps
  // that status and takes the rest (usage, title) from the server.
  let statusEpoch = 0;
  function setStatus(status) {
    statusEpoch += 1;
    show({ ...session, status });
  }
  function refreshSession() {
    if (refreshing) {
      again = true;
      return;
    }
    const epoch = statusEpoch;
    const read = api(`sessions/${sessionId}`)
      .then((fresh) => show(epoch === statusEpoch ? fresh : { ...fresh, status: session.status }));
    refreshing = read.catch(() => {}).finally(() => {
      refreshing = null;
      if (again) {
        again = false;
        refreshSession();
      }
    });
  }

  function apply(event) {
    const data = event.data ?? {};
    switch (event.type) {
      case "input.message":
      case "output.message.completed":
        chat.message(data.message);
        break;
      case "output.message.started":
        chat.started(data.message_id);
        break;
      case "output.message.delta":
        chat.delta(data);
        break;
      case "tool.started":
        chat.toolStarted(data.tool_call);
        break;
      case "tool.completed":
        chat.toolResult(data.tool_call_id, data.result, data.error, data.duration_ms);
        break;
      case "tool.call_requested":
        if (data.kind === "ask_user") human.refresh().catch(() => {});
        else chat.requested(data.tool_calls ?? []);
        setStatus("waitingfortoolresults");
        break;
      case "tool.approval_requested":
        human.refresh().catch(() => {});
        break;
      case "tool.questions_answered":
      case "tool.approval_decided":
        human.done(data.tool_call_id);
        break;
      case "turn.started":
        setStatus("active");
        break;
      default:
        break;
    }
    if (event.type === "tool.completed") human.done(data.tool_call_id);
    if (TURN_ENDS.includes(event.type) || event.type.startsWith("subagent.")) {
      drawFamily().catch(() => {});
    }
    if (TURN_ENDS.includes(event.type)) {
      human.refresh().catch(() => {});
      turnRow(event);
      refreshSession();
    } else if (event.type === "session.idled" || event.type === "session.activated") {
      setStatus(event.type === "session.idled" ? "idle" : "active");
      refreshSession();
    }
    timeline.push(event);
  }

  // Order matters: the last sequence first, then the messages (which hold at least that much),
  // then the stream after that sequence; a message seen in both is drawn once (by id).
  const [last, counted] = await Promise.all([
    api(`sessions/${sessionId}/events`, { query: { limit: 1 } }),
    api(`sessions/${sessionId}/messages`, { query: { limit: 1 } }),
  ]);
  const afterSequence = last.data.length ? last.data[0].sequence : 0;
  let firstShown = Math.max(0, counted.total - MESSAGES_PAGE);
  const [messages, durations, turns] = await Promise.all([
    api(`sessions/${sessionId}/messages`, { query: { offset: firstShown, limit: MESSAGES_PAGE } }),
    api(`sessions/${sessionId}/events`, { query: { types: ["tool.completed"], limit: 1000 } }),
    api(`sessions/${sessionId}/events`, { query: { types: TURN_ENDS, limit: 50 } }),
    timeline.reload(),
    drawFamily(),
  ]);
  messages.data.forEach((message) => chat.message(message));
  // The chat shows the last messages; older ones come a page at a time, on demand.
  const earlier = h("button", { type: "button", class: "link", hidden: firstShown === 0 },
    "Show earlier messages");
  earlier.addEventListener("click", async () => {
    const from = Math.max(0, firstShown - MESSAGES_PAGE);
    const page = await api(`sessions/${sessionId}/messages`,
      { query: { offset: from, limit: firstShown - from } });
    chat.earlier(page.data);
    firstShown = from;
    earlier.hidden = firstShown === 0;
  });
  durations.data.forEach((e) => chat.toolDuration(e.data.tool_call_id, e.data.duration_ms));
  turns.data.forEach(turnRow);
  if (session.status === "waitingfortoolresults") {
    const asked = await api(`sessions/${sessionId}/events`,
      { query: { types: ["tool.call_requested"], limit: 20 } });
    asked.data.filter((e) => e.data.kind !== "ask_user")
      .forEach((e) => chat.requested(e.data.tool_calls ?? []));
    await human.refresh();
  }
  show(session);

  const stream = new EventStream(sessionId, {
    afterSequence,
    onEvent: apply,
    onState: (state) => {
      streamState.textContent = state;
      streamState.dataset.state = state;
      streamState.dataset.reconnects = String(stream.reconnects);
    },
    onRefused: (error) => {
      streamState.textContent = `stream closed: ${error.message}`;
    },
  });
  stream.start();

  const chatPanel = h("div", {}, earlier, chat.node, human.node, composer,
    h("details", { class: "card" }, h("summary", {}, "Usage per turn"),
      h("table", { class: "list" }, h("thead", {}, h("tr", {},
        ...["Turn", "Outcome", "Duration", "Tokens", "Cost"].map((n) => h("th", { scope: "col" }, n)))),
      turnRows)));
  const tabs = storageTabs(session, chatPanel);
  root.append(
    h("div", { class: "page-head" }, title, statusSlot, streamState),
    h("p", { class: "muted" }, h("a", { href: "#/sessions" }, "← Sessions"), " · ",
      session.agent_id ? h("a", { href: `#/agents/${session.agent_id}` },
        `agent ${agent?.display_name || agent?.name || session.agent_id}`) : "no agent",
      " · ", model ? `model ${model.display_name}` : "default model", " · ", shortId(session.id)),
    usage, family,
    h("div", { class: "session-grid" }, tabs, timeline.node));
  return () => stream.stop();
}
