// The chat of a session: messages by id (so a message seen twice is drawn once), answers
// growing as deltas arrive, tool calls inline and collapsible, and a form per pending
// client-side tool call.

import { api } from "./api.js";
import { attempt, field, h, json } from "./dom.js";

export class Chat {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.bubbles = new Map(); // message id -> { node, body, completed }
    this.tools = new Map(); // tool call id -> { node, status, duration, output, call }
    this.pendingForms = new Map(); // tool call id -> form
    this.before = null; // where new bubbles go: null at the end; a node while drawing earlier ones
    this.log = h("ol", { class: "chat", "aria-label": "Conversation" });
    this.pending = h("section", { class: "pending", "aria-label": "Tool calls waiting for you" });
    this.node = h("div", { class: "chat-wrap" }, this.log, this.pending);
  }

  // A whole message (from GET messages, input.message or output.message.completed).
  message(message) {
    if (message.role === "tool_result") {
      for (const part of message.content) {
        if (part.type === "tool_result") this.toolResult(part.tool_call_id, part.result, part.error);
      }
      return;
    }
    const bubble = this.bubble(message.id, message.role);
    bubble.completed = true;
    bubble.node.classList.remove("streaming");
    const parts = [];
    for (const part of message.content) {
      if (part.type === "text") parts.push(h("div", { class: "text" }, part.text));
      else if (part.type === "tool_call") parts.push(this.toolCall(part).node);
      else parts.push(h("pre", { class: "part" }, json(part)));
    }
    bubble.body.replaceChildren(...parts);
  }

  bubble(messageId, role) {
    let bubble = this.bubbles.get(messageId);
    if (!bubble) {
      const body = h("div", { class: "body" });
      const node = h("li", { class: `msg ${role}`, dataset: { messageId } },
        h("span", { class: "who" }, role === "user" ? "You" : role === "agent" ? "Agent" : role),
        body);
      bubble = { node, body, completed: false };
      this.bubbles.set(messageId, bubble);
      this.log.insertBefore(node, this.before);
    }
    return bubble;
  }

  // Older messages (a page loaded on demand), drawn above the ones already shown.
  earlier(messages) {
    this.before = this.log.firstChild;
    try {
      messages.forEach((message) => this.message(message));
    } finally {
      this.before = null;
    }
  }

  started(messageId) {
    const bubble = this.bubble(messageId, "agent");
    if (!bubble.completed) bubble.node.classList.add("streaming");
  }

  delta(data) {
    const bubble = this.bubble(data.message_id, "agent");
    if (bubble.completed) return;
    bubble.node.classList.add("streaming");
    let text = bubble.body.querySelector(".text");
    if (!text) {
      text = h("div", { class: "text" });
      bubble.body.prepend(text);
    }
    text.textContent = data.accumulated ?? text.textContent + (data.delta ?? "");
    bubble.node.dataset.deltas = String(Number(bubble.node.dataset.deltas ?? 0) + 1);
    this.log.lastElementChild?.scrollIntoView?.({ block: "end" });
  }

  toolCall(call) {
    let tool = this.tools.get(call.id);
    if (!tool) {
      const status = h("span", { class: "tool-status" }, "called");
      const duration = h("span", { class: "tool-duration" });
      const output = h("div", { class: "tool-output" });
      const node = h("details", { class: "tool", dataset: { toolCallId: call.id } },
        h("summary", {}, h("span", { class: "tool-name" }, call.name), " ", status, " ", duration),
        h("div", { class: "tool-args" }, h("h4", {}, "Arguments"), h("pre", {}, json(call.arguments ?? {}))),
        output);
      tool = { node, status, duration, output, call };
      this.tools.set(call.id, tool);
    }
    return tool;
  }

  toolStarted(call) {
    const tool = this.toolCall(call);
    if (!tool.done) tool.status.textContent = "running…";
  }

  toolResult(callId, result, error, durationMs) {
    const tool = this.tools.get(callId) ?? this.toolCall({ id: callId, name: "tool", arguments: {} });
    tool.done = true;
    tool.node.classList.toggle("failed", Boolean(error));
    tool.status.textContent = error ? "error" : "done";
    if (durationMs !== undefined && durationMs !== null) tool.duration.textContent = `${durationMs} ms`;
    tool.output.replaceChildren(
      h("h4", {}, error ? "Error" : "Result"),
      h("pre", { class: error ? "error" : "" }, error ? String(error) : resultText(result)));
    this.pendingForms.get(callId)?.remove();
    this.pendingForms.delete(callId);
  }

  toolDuration(callId, durationMs) {
    const tool = this.tools.get(callId);
    if (tool && durationMs !== undefined && durationMs !== null) tool.duration.textContent = `${durationMs} ms`;
  }

  // Client-side tool calls the turn waits for: one form each, answered with a result or an error.
  requested(calls) {
    for (const call of calls) {
      const tool = this.tools.get(call.id);
      if (tool?.done || this.pendingForms.has(call.id)) continue;
      if (tool) tool.status.textContent = "waiting for you";
      const result = h("textarea", { name: "result", rows: 3, spellcheck: "false" });
      const error = h("input", { type: "text", name: "error" });
      const problem = h("p", { class: "error", role: "alert" });
      const form = h("form", { class: "card tool-form", dataset: { toolCallId: call.id } },
        h("h3", {}, `Tool call: ${call.name}`),
        h("pre", {}, json(call.arguments ?? {})),
        field("Result (JSON, or plain text)", result),
        field("Or an error message", error),
        h("button", { type: "submit" }, "Send result"), problem);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const item = { tool_call_id: call.id };
        if (error.value.trim()) item.error = error.value.trim();
        else item.result = parseLoose(result.value);
        const done = await attempt(problem, () => api(`sessions/${this.sessionId}/tool-results`,
          { method: "POST", body: { tool_results: [item] } }));
        if (done) {
          form.remove();
          this.pendingForms.delete(call.id);
        }
      });
      this.pendingForms.set(call.id, form);
      this.pending.append(form);
    }
  }
}

function parseLoose(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function resultText(result) {
  if (Array.isArray(result) && result.every((p) => p && p.type === "text")) {
    return result.map((p) => p.text).join("\n");
  }
  return typeof result === "string" ? result : json(result);
}
