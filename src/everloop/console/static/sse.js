// A session's event stream over fetch (EventSource cannot send an Authorization header).
//
// It resumes after the last event it delivered (`after_sequence`) whenever the connection
// drops (a server restart, a network blip, the server's periodic `disconnecting`), backing off
// up to a few seconds, and never delivers an event twice: anything at or below the last
// delivered sequence is dropped.

import { apiUrl, authHeaders, errorOf, refused } from "./api.js";

export class EventStream {
  constructor(sessionId, { afterSequence = 0, onEvent, onState = () => {}, onRefused = () => {} }) {
    this.sessionId = sessionId;
    this.lastSequence = afterSequence;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onRefused = onRefused;
    this.stopped = true;
    this.retryMs = null;
    this.reconnects = 0;
  }

  start() {
    this.stopped = false;
    this.run();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async run() {
    let backoff = 250;
    while (!this.stopped) {
      this.controller = new AbortController();
      try {
        const url = apiUrl(`sessions/${encodeURIComponent(this.sessionId)}/sse`,
          { after_sequence: this.lastSequence });
        const response = await fetch(url, {
          headers: authHeaders({ Accept: "text/event-stream" }),
          signal: this.controller.signal,
          cache: "no-store",
        });
        if (!response.ok) {
          const error = await errorOf(response);
          if (response.status === 401 || response.status === 403 || response.status === 404) {
            this.stopped = true;
            this.onState("closed");
            if (response.status === 401) refused(error);
            else this.onRefused(error);
            return;
          }
          throw error;
        }
        this.onState("live");
        backoff = 250;
        await this.read(response.body);
      } catch {
        // A dropped or refused connection: reconnect below unless stopped.
      }
      if (this.stopped) return;
      this.onState("reconnecting");
      this.reconnects += 1;
      const wait = this.retryMs ?? backoff;
      this.retryMs = null;
      await new Promise((resolve) => setTimeout(resolve, wait));
      backoff = Math.min(backoff * 2, 4000);
    }
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // A "\r" at the end may be half of a "\r\n": keep it until the next chunk.
      const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      const text = buffer.slice(0, cut).replace(/\r\n?/g, "\n");
      buffer = text + buffer.slice(cut);
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.frame(block);
      }
    }
  }

  frame(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (name === "event") type = value;
      else if (name === "data") data.push(value);
      else if (name === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (type === "connected" || type === "disconnecting" || data.length === 0) return;
    let event;
    try {
      event = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    if (typeof event.sequence !== "number" || event.sequence <= this.lastSequence) return;
    this.lastSequence = event.sequence;
    this.onEvent(event);
  }
}
