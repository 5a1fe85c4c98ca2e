// Named queries as forms: one input per typed parameter (/queries), with the API's constraints
// as the browser's own validation attributes. The API still validates everything.
import { getJson } from "./api.js";
import { el } from "./format.js";

const INPUT_TYPES = { integer: "number", number: "number", date: "date", timestamp: "datetime-local" };

function field(query, name, spec) {
  const id = `named-${query}-${name}`;
  let input;
  if (spec.enum) {
    input = el("select", { id, name }, ...spec.enum.map((v) => el("option", { value: v, text: v })));
  } else if (spec.type === "boolean") {
    input = el("select", { id, name }, el("option", { value: "true", text: "true" }), el("option", { value: "false", text: "false" }));
  } else {
    input = el("input", {
      id, name, type: INPUT_TYPES[spec.type] || "text", min: spec.min, max: spec.max,
      maxlength: spec.max_length, step: spec.type === "integer" ? "1" : spec.type === "number" ? "any" : undefined,
      required: spec.required && spec.default === undefined,
    });
  }
  if (spec.default !== undefined && spec.default !== null) input.value = String(spec.default);
  return el("div", { class: "field" }, el("label", { for: id, text: `${name} (${spec.type})` }), input);
}

function collect(form, params) {
  const values = {};
  for (const [name, spec] of Object.entries(params)) {
    const raw = form.elements[name].value;
    if (raw === "") continue;
    values[name] = spec.type === "integer" || spec.type === "number" ? Number(raw) : raw;
  }
  return values;
}

export async function loadNamedQueries(container, onRun) {
  let queries;
  try {
    queries = (await getJson("queries")).queries;
  } catch (error) {
    container.replaceChildren(el("p", { class: "error-text", text: `Cannot list named queries: ${error.message}` }));
    return;
  }
  container.replaceChildren(...Object.entries(queries).map(([name, query]) => {
    const form = el("form", { class: "named-form", "data-query": name },
      ...Object.entries(query.params || {}).map(([p, spec]) => field(name, p, spec)),
      el("button", { type: "submit", class: "small", text: `Run ${name}` }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      onRun({ name, params: collect(form, query.params || {}) });
    });
    return el("details", { class: "named" }, el("summary", { text: name }),
      el("p", { class: "meta", text: query.description || "" }), form);
  }));
}
