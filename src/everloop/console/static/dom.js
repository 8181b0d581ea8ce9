// Building DOM nodes from values, never by parsing HTML: every string from the API lands as text.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name in node && typeof value !== "string") {
      node[name] = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

let fieldCount = 0;

// A labelled form field: <label for=...> plus the control (an id is made when missing).
export function field(label, control, hint) {
  if (!control.id) control.id = `f${++fieldCount}`;
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control,
    hint ? h("small", { class: "hint" }, hint) : null);
}

export function options(select, items, selected) {
  select.replaceChildren(...items.map(([value, text]) =>
    h("option", { value, selected: value === selected }, text)));
  return select;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

export function shortId(id) {
  if (!id) return "";
  const cut = id.indexOf("_");
  return cut > 0 ? `${id.slice(0, cut)}…${id.slice(-6)}` : id.slice(-8);
}

export function when(ts) {
  if (!ts) return "";
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? ts : date.toLocaleString();
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

export function tokens(usage) {
  if (!usage) return "–";
  const cache = usage.cache_read_tokens ? `, ${usage.cache_read_tokens} cached` : "";
  return `${usage.input_tokens ?? 0} in / ${usage.output_tokens ?? 0} out${cache}`;
}

// The price of a usage in US dollars, from a model's cost per million tokens (null if unknown).
export function cost(usage, modelCost) {
  if (!usage || !modelCost) return null;
  const dollars = ((usage.input_tokens ?? 0) * (modelCost.input ?? 0)
    + (usage.output_tokens ?? 0) * (modelCost.output ?? 0)
    + (usage.cache_read_tokens ?? 0) * (modelCost.cache_read ?? 0)) / 1e6;
  if (dollars === 0) return "$0";
  return `$${dollars.toFixed(dollars < 0.01 ? 5 : 2)}`;
}

// A short message under the header, read out by screen readers.
export function notify(text, kind = "info") {
  const notice = document.getElementById("notice");
  notice.replaceChildren(text ? h("p", { class: `notice ${kind}` }, text) : "");
}

// Run an action from a form; its API error, if any, is shown in `where` (role=alert).
export async function attempt(where, action) {
  where.textContent = "";
  try {
    return await action();
  } catch (error) {
    const field = error.field ? ` (${error.field})` : "";
    where.textContent = `${error.message}${field}`;
    return undefined;
  }
}
