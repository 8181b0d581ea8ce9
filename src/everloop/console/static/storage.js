// A session's tabs: the chat always; files, key-values and SQL databases when the session's
// features include them (browse, view, download). Each tab loads when first opened.

import { api, apiUrl, authHeaders, errorOf } from "./api.js";
import { h, json, when } from "./dom.js";

const TABS = [
  ["file_system", "Files", filesPanel],
  ["key_value", "Key-values", keyValuesPanel],
  ["sql_database", "SQL", databasesPanel],
];

export function storageTabs(session, chatPanel) {
  const features = new Set(session.features ?? []);
  const tabs = [["chat", "Chat", () => chatPanel]].concat(
    TABS.filter(([feature]) => features.has(feature)).map(([key, label, make]) =>
      [key, label, () => make(session.id)]));
  if (tabs.length === 1) return chatPanel;
  const list = h("div", { role: "tablist", "aria-label": "Session views" });
  const panels = h("div", {});
  const made = new Map();
  const buttons = tabs.map(([key, label, make], index) => {
    const button = h("button", {
      type: "button", role: "tab", id: `tab-${key}`, "aria-controls": `panel-${key}`,
      "aria-selected": String(index === 0), tabindex: index === 0 ? 0 : -1,
    }, label);
    button.addEventListener("click", () => select(index));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) select((index + step + tabs.length) % tabs.length, true);
    });
    list.append(button);
    return button;
  });
  function select(index, focus = false) {
    tabs.forEach(([key, , make], i) => {
      buttons[i].setAttribute("aria-selected", String(i === index));
      buttons[i].tabIndex = i === index ? 0 : -1;
      if (i === index && !made.has(key)) {
        const panel = h("div", { role: "tabpanel", id: `panel-${key}`, "aria-labelledby": `tab-${key}` }, make());
        made.set(key, panel);
        panels.append(panel);
      }
      if (made.has(key)) made.get(key).hidden = i !== index;
    });
    if (focus) buttons[index].focus();
  }
  select(0);
  return h("div", { class: "tabs" }, list, panels);
}

function filesPanel(sessionId) {
  const node = h("div", { class: "card" });
  const base = `sessions/${sessionId}/fs`;
  async function open(path) {
    const listing = await api(path ? `${base}/${path}` : base);
    if (!listing.data) {
      node.replaceChildren(crumbs(path, open), fileView(sessionId, listing));
      return;
    }
    node.replaceChildren(crumbs(path, open), h("ul", { class: "files" }, listing.data.map((f) => {
      const target = f.path.replace(/^\/?workspace\/?/, "").replace(/^\//, "");
      return h("li", {}, h("button", { type: "button", class: "link", onclick: () => open(target) },
        f.is_directory ? `${f.name}/` : f.name), " ", h("span", { class: "muted" },
        f.is_directory ? "" : `${f.size_bytes} bytes · ${when(f.updated_at)}`));
    })));
  }
  open("").catch((error) => node.replaceChildren(h("p", { class: "error" }, error.message)));
  return node;
}

function crumbs(path, open) {
  return h("p", {}, h("button", { type: "button", class: "link", onclick: () => open("") }, "/workspace"),
    path ? ` / ${path}` : "");
}

function fileView(sessionId, file) {
  const download = h("button", { type: "button" }, "Download");
  download.addEventListener("click", async () => {
    const path = file.path.replace(/^\/?workspace\/?/, "");
    const response = await fetch(apiUrl(`sessions/${sessionId}/fs/_/download/${path}`), { headers: authHeaders() });
    if (!response.ok) throw await errorOf(response);
    const link = h("a", { href: URL.createObjectURL(await response.blob()), download: file.name });
    link.click();
    URL.revokeObjectURL(link.href);
  });
  const text = file.encoding === "base64" ? "(binary file)" : file.content ?? "";
  return h("div", {}, h("h3", {}, file.name), download, h("pre", { class: "file" }, text));
}

function keyValuesPanel(sessionId) {
  const node = h("div", { class: "card" }, "Loading…");
  api(`sessions/${sessionId}/storage/keys`).then((found) => {
    node.replaceChildren(found.data.length ? h("table", { class: "list" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Key"), h("th", { scope: "col" }, "Value"),
        h("th", { scope: "col" }, "Updated"))),
      h("tbody", {}, found.data.map((kv) => h("tr", {}, h("td", {}, kv.key),
        h("td", {}, h("code", {}, kv.value)), h("td", {}, when(kv.updated_at))))))
      : h("p", { class: "muted" }, "No keys yet."));
  }).catch((error) => node.replaceChildren(h("p", { class: "error" }, error.message)));
  return node;
}

function databasesPanel(sessionId) {
  const node = h("div", { class: "card" }, "Loading…");
  api(`sessions/${sessionId}/databases`).then(async (found) => {
    if (!found.data.length) {
      node.replaceChildren(h("p", { class: "muted" }, "No databases yet."));
      return;
    }
    const schemas = await Promise.all(found.data.map((db) =>
      api(`sessions/${sessionId}/databases/${encodeURIComponent(db.name)}/schema`)));
    node.replaceChildren(...schemas.map((schema) => h("section", {}, h("h3", {}, schema.database),
      schema.tables.map((table) => h("details", {}, h("summary", {}, `${table.type} ${table.name}`),
        h("pre", {}, table.sql ?? json(table.columns)))))));
  }).catch((error) => node.replaceChildren(h("p", { class: "error" }, error.message)));
  return node;
}
