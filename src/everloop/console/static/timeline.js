// The event timeline beside the chat: a page of events at a time (the newest first loaded,
// older ones on demand), filtered by type and turn in the database, each event's JSON drawn
// only when opened. At most MAX_ROWS rows are in the page, so a session of thousands of
// events stays light.

import { api } from "./api.js";
import { field, h, json, options, shortId, when } from "./dom.js";

const PAGE = 200;
const MAX_ROWS = 600;
const DELTAS = ["output.message.delta", "reason.thinking.delta"];

export class Timeline {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.filter = { types: [], turn: "", hideDeltas: true };
    this.turns = new Set();
    this.types = new Set();
    this.oldest = null;
    this.held = null; // live events held while a page loads
    this.newest = 0; // the newest sequence in the list: a live event at or below it is there already
    this.list = h("ol", { class: "timeline", "aria-label": "Events" });
    this.typeInput = h("input", { type: "text", name: "types", list: "event-types", placeholder: "e.g. tool.completed" });
    this.typeList = h("datalist", { id: "event-types" });
    this.turnSelect = options(h("select", { name: "turn" }), [["", "all turns"]]);
    this.hideDeltas = h("input", { type: "checkbox", name: "hide_deltas", checked: true });
    this.count = h("p", { class: "muted" });
    this.older = h("button", { type: "button", onclick: () => this.loadOlder() }, "Load older events");
    const form = h("form", { class: "timeline-filters", "aria-label": "Filter events" },
      field("Types (comma-separated)", this.typeInput), this.typeList,
      field("Turn", this.turnSelect),
      h("label", { class: "check" }, this.hideDeltas, " hide deltas"),
      h("button", { type: "submit" }, "Filter"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.filter = {
        types: this.typeInput.value.split(",").map((t) => t.trim()).filter(Boolean),
        turn: this.turnSelect.value,
        hideDeltas: this.hideDeltas.checked,
      };
      this.reload();
    });
    this.node = h("aside", { class: "timeline-pane", "aria-labelledby": "timeline-title" },
      h("h2", { id: "timeline-title" }, "Events"), form, this.count, this.older, this.list);
  }

  query(extra) {
    return {
      types: this.filter.types.length ? this.filter.types : undefined,
      exclude: this.filter.hideDeltas && !this.filter.types.length ? DELTAS : undefined,
      turn_id: this.filter.turn || undefined,
      ...extra,
    };
  }

  matches(event) {
    if (this.filter.types.length && !this.filter.types.includes(event.type)) return false;
    if (this.filter.hideDeltas && !this.filter.types.length && DELTAS.includes(event.type)) return false;
    if (this.filter.turn && event.context?.turn_id !== this.filter.turn) return false;
    return true;
  }

  async reload() {
    // Live events that come while the page loads wait, then go in after it (not twice).
    this.held = [];
    let page;
    try {
      page = await api(`sessions/${this.sessionId}/events`, { query: this.query({ limit: PAGE }) });
    } finally {
      const held = this.held;
      this.held = null;
      if (page) {
        this.list.replaceChildren();
        this.oldest = null;
        this.newest = 0;
        page.data.forEach((event) => this.add(event));
      }
      held.forEach((event) => this.push(event));
    }
    this.older.hidden = page.data.length < PAGE;
    this.counted();
  }

  async loadOlder() {
    if (this.oldest === null) return;
    const page = await api(`sessions/${this.sessionId}/events`, {
      query: this.query({ before_sequence: this.oldest, limit: PAGE, order_desc: true }),
    });
    for (const event of page.data) {
      this.list.prepend(this.row(event));
      this.oldest = event.sequence;
    }
    this.older.hidden = page.data.length < PAGE;
    // Keep the page light: drop the newest rows past the cap (they come back on a reload).
    while (this.list.childElementCount > MAX_ROWS) this.list.lastElementChild.remove();
    this.counted();
  }

  // A live event (or one of a loaded page), oldest first.
  push(event) {
    if (this.held) {
      this.held.push(event);
      return;
    }
    this.learn(event);
    if (!this.matches(event) || event.sequence <= this.newest) return;
    this.add(event);
    if (this.list.childElementCount > MAX_ROWS) {
      this.list.firstElementChild.remove();
      this.oldest = Number(this.list.firstElementChild.dataset.sequence);
      this.older.hidden = false;
    }
    this.counted();
  }

  add(event) {
    this.learn(event);
    this.list.append(this.row(event));
    if (this.oldest === null) this.oldest = event.sequence;
    this.newest = Math.max(this.newest, event.sequence);
  }

  learn(event) {
    if (!this.types.has(event.type)) {
      this.types.add(event.type);
      this.typeList.append(h("option", { value: event.type }));
    }
    const turn = event.context?.turn_id;
    if (turn && !this.turns.has(turn)) {
      this.turns.add(turn);
      this.turnSelect.append(h("option", { value: turn }, shortId(turn)));
    }
  }

  row(event) {
    const details = h("details", {},
      h("summary", {}, h("span", { class: "seq" }, `#${event.sequence}`), " ",
        h("span", { class: "etype" }, event.type), " ",
        h("span", { class: "muted" }, shortId(event.context?.turn_id))));
    details.addEventListener("toggle", () => {
      if (details.open && details.childElementCount === 1) {
        details.append(h("p", { class: "muted" }, when(event.ts)), h("pre", { class: "event-json" }, json(event)));
      }
    }, { once: false });
    return h("li", { dataset: { sequence: event.sequence, type: event.type } }, details);
  }

  counted() {
    this.count.textContent = `${this.list.childElementCount} events shown`;
  }
}
