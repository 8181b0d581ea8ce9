// What a turn waits for from a person: `ask_user` question sets and tool calls held for
// approval, one form each, read from GET pending-input (refreshed when the stream says a
// request came) and answered through the public endpoints.

import { api } from "./api.js";
import { attempt, field, h, json } from "./dom.js";

export class PendingInput {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.forms = new Map(); // tool call id -> form
    this.node = h("section", { class: "pending", "aria-label": "Questions and approvals waiting for you" });
  }

  async refresh() {
    const pending = await api(`sessions/${this.sessionId}/pending-input`);
    const open = new Set();
    for (const set of pending.pending_questions) {
      open.add(set.tool_call_id);
      if (!this.forms.has(set.tool_call_id)) this.add(set.tool_call_id, this.questionForm(set));
    }
    for (const call of pending.pending_approvals) {
      open.add(call.tool_call_id);
      if (!this.forms.has(call.tool_call_id)) this.add(call.tool_call_id, this.approvalForm(call));
    }
    for (const id of [...this.forms.keys()]) if (!open.has(id)) this.done(id);
  }

  add(callId, form) {
    this.forms.set(callId, form);
    this.node.append(form);
  }

  // The request was answered, decided, timed out or abandoned: its form goes.
  done(callId) {
    this.forms.get(callId)?.remove();
    this.forms.delete(callId);
  }

  questionForm(set) {
    const problem = h("p", { class: "error", role: "alert" });
    const readers = set.questions.map((question, index) => questionControl(question, index));
    const form = h("form", { class: "card question-form", dataset: { toolCallId: set.tool_call_id } },
      h("h3", {}, "The agent asks"), readers.map((r) => r.node),
      h("button", { type: "submit" }, "Send answers"), problem);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const answers = set.questions.map((q, i) => ({ question_id: q.id, answer: readers[i].read() }));
      const sent = await attempt(problem, () => api(`sessions/${this.sessionId}/question-answers`,
        { method: "POST", body: { tool_call_id: set.tool_call_id, answers } }));
      if (sent) this.done(set.tool_call_id);
    });
    return form;
  }

  approvalForm(call) {
    const problem = h("p", { class: "error", role: "alert" });
    const reason = h("input", { type: "text", name: "reason" });
    const decide = async (approved) => {
      const decision = { tool_call_id: call.tool_call_id, approved };
      if (reason.value.trim()) decision.reason = reason.value.trim();
      const sent = await attempt(problem, () => api(`sessions/${this.sessionId}/tool-approvals`,
        { method: "POST", body: { decisions: [decision] } }));
      if (sent) this.done(call.tool_call_id);
    };
    return h("form", { class: "card approval-form", dataset: { toolCallId: call.tool_call_id },
      onsubmit: (event) => event.preventDefault() },
    h("h3", {}, `Approve the call of ${call.tool_name}?`), h("pre", {}, json(call.arguments)),
    field("Reason (optional; the model sees it when denied)", reason),
    h("div", { class: "row" },
      h("button", { type: "button", onclick: () => decide(true) }, "Approve"),
      h("button", { type: "button", class: "danger", onclick: () => decide(false) }, "Deny")),
    problem);
  }
}

let groups = 0;

function questionControl(question, index) {
  const name = `q${++groups}-${index}`;
  if (!question.choices?.length) {
    const input = h("input", { type: "text", name, required: true });
    return { node: field(question.question, input), read: () => input.value };
  }
  const type = question.multiple ? "checkbox" : "radio";
  const boxes = question.choices.map((choice) =>
    h("input", { type, name, value: choice, required: type === "radio" }));
  const other = question.allow_other ? h("input", { type: "text", name: `${name}-other` }) : null;
  const node = h("fieldset", {}, h("legend", {}, question.question),
    boxes.map((box) => h("label", { class: "check" }, box, ` ${box.value}`)),
    other ? field("Other", other) : null);
  return {
    node,
    read: () => {
      const picked = boxes.filter((b) => b.checked).map((b) => b.value);
      if (other?.value.trim()) picked.push(other.value.trim());
      return question.multiple ? picked : picked[0] ?? "";
    },
  };
}
