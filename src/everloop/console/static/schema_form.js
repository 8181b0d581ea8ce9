// A small form from a JSON schema (a capability's config_schema): strings, enums, numbers,
// booleans and string lists get their own control; anything else is edited as JSON.

import { field, h, json, options } from "./dom.js";

export function schemaForm(schema, value = {}) {
  const properties = schema?.properties ?? {};
  const readers = [];
  const node = h("div", { class: "schema-form" });
  for (const [name, prop] of Object.entries(properties)) {
    const current = value?.[name];
    const label = prop.title ?? name;
    const hint = prop.description;
    let control;
    let read;
    if (Array.isArray(prop.enum)) {
      control = options(h("select", { name }), [["", "(default)"], ...prop.enum.map((v) => [String(v), String(v)])],
        current === undefined ? "" : String(current));
      read = () => (control.value === "" ? undefined : prop.enum.find((v) => String(v) === control.value));
    } else if (prop.type === "boolean") {
      control = h("input", { type: "checkbox", name, checked: current ?? prop.default ?? false });
      read = () => control.checked;
    } else if (prop.type === "integer" || prop.type === "number") {
      control = h("input", {
        type: "number", name, step: prop.type === "integer" ? 1 : "any",
        min: prop.minimum, max: prop.maximum, value: current ?? "", placeholder: prop.default ?? "",
      });
      read = () => (control.value === "" ? undefined : Number(control.value));
    } else if (prop.type === "string") {
      control = h("input", { type: "text", name, value: current ?? "", placeholder: prop.default ?? "" });
      read = () => (control.value === "" ? undefined : control.value);
    } else if (prop.type === "array" && prop.items?.type === "string") {
      control = h("textarea", { name, rows: 3 }, (current ?? []).join("\n"));
      read = () => {
        const lines = control.value.split("\n").map((l) => l.trim()).filter(Boolean);
        return lines.length ? lines : undefined;
      };
    } else {
      control = h("textarea", { name, rows: 4, spellcheck: "false" }, current === undefined ? "" : json(current));
      read = () => (control.value.trim() === "" ? undefined : JSON.parse(control.value));
    }
    node.append(field(label, control, hint));
    readers.push([name, read]);
  }
  return {
    node,
    empty: readers.length === 0,
    // The config as an object (fields left empty are left out); throws on invalid JSON.
    value() {
      const config = {};
      for (const [name, read] of readers) {
        const got = read();
        if (got !== undefined) config[name] = got;
      }
      return config;
    },
  };
}
