// The schema browser: tables the token may read (/schema) with their columns, row counts, the
// row-filtered flag when the API reports one, and freshness from /snapshot; the snapshot version
// and age go in the header.
import { getJson } from "./api.js";
import { age, el } from "./format.js";

function tableEntry(name, table, fresh, onPick) {
  const badges = [];
  if (table.row_filtered) badges.push(el("span", { class: "badge", title: "you see only the rows your token allows", text: "row-filtered" }));
  const status = fresh?.status ?? table.status;
  if (status === "stale") badges.push(el("span", { class: "badge stale", text: "stale" }));
  const rows = table.row_count === null || table.row_count === undefined ? "" : `${table.row_count.toLocaleString()} rows`;
  const synced = fresh?.age_seconds !== undefined ? `synced ${age(fresh.age_seconds)} ago` : "";
  const columns = el("ul", { class: "columns" }, ...table.columns.map((c) =>
    el("li", {}, el("code", { text: c.name }), " ", el("span", { class: "type", text: c.type }))));
  const details = el("details", { class: "table", "data-table": name },
    el("summary", {}, el("span", { class: "table-name", text: name }), ...badges),
    el("p", { class: "meta", text: [rows, synced].filter(Boolean).join(" · ") }),
    table.description ? el("p", { class: "meta", text: table.description }) : null,
    fresh?.last_error ? el("p", { class: "meta stale", text: `last sync failed: ${fresh.last_error}` }) : null,
    fresh?.synced_at ? el("p", { class: "meta", text: `synced at ${new Date(fresh.synced_at).toLocaleString()}` }) : null,
    columns,
    el("button", { type: "button", class: "small", onclick: () => onPick(name), text: `Query ${name}` }));
  return el("li", {}, details);
}

// Loads both documents; resolves to {tableName: [columnName, ...]} for the editor's completion.
export async function loadSchema(onPick) {
  const list = document.getElementById("table-list");
  const info = document.getElementById("snapshot-info");
  list.replaceChildren(el("li", { class: "meta", text: "loading…" }));
  const [schema, snapshot] = await Promise.allSettled([getJson("schema"), getJson("snapshot")]);
  const fresh = snapshot.status === "fulfilled" ? snapshot.value.tables : {};
  if (snapshot.status === "fulfilled") {
    const s = snapshot.value;
    info.textContent = `Snapshot ${s.version} · ${age(s.age_seconds)} old`;
    info.title = `created ${new Date(s.created_at).toLocaleString()}`;
  }
  if (schema.status === "rejected") {
    list.replaceChildren(el("li", { class: "error-text", text: `Cannot list tables: ${schema.reason.message}` }));
    return {};
  }
  if (snapshot.status === "rejected") info.textContent = `Snapshot ${schema.value.snapshot_version}`;
  const tables = schema.value.tables;
  list.replaceChildren(...Object.entries(tables).map(([name, table]) => tableEntry(name, table, fresh[name], onPick)));
  return Object.fromEntries(Object.entries(tables).map(([name, t]) => [name, t.columns.map((c) => c.name)]));
}
