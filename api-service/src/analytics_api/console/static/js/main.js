// Wires the console together: config, login, then schema, editor, named queries, results.
import { runTarget } from "./api.js";
import { setupLogin } from "./auth.js";
import { createEditor, getSql, lineAndColumn, locateError, selectRange, setCompletionSchema, setSql } from "./editor.js";
import { el } from "./format.js";
import { readHistory, remember, shareLink, sharedSql } from "./history.js";
import { loadNamedQueries } from "./named.js";
import { Results } from "./results.js";
import { loadSchema } from "./schema.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_SQL = "SELECT status, count(*) AS orders, sum(total) AS revenue\nFROM orders\nGROUP BY status\nORDER BY orders DESC";
let editor;
let results;
let runs = 0;

function showError(error, sql) {
  const box = $("error");
  box.hidden = false;
  let where = "";
  const spot = sql === undefined ? null : locateError(sql, error.message);
  if (spot) {
    const { line, column } = lineAndColumn(sql, spot.from);
    where = ` (line ${line}, column ${column})`;
    selectRange(editor, spot.from, spot.to);
  }
  box.replaceChildren(el("strong", { text: `${error.status ?? ""} ${error.code ?? "error"}`.trim() }),
    `: ${error.message}${where}`);
}

async function run(target) {
  $("error").hidden = true;
  $("run").disabled = true;
  $("run-status").textContent = "Running…";
  try {
    const response = await runTarget(target);
    const result = await response.json();
    performance.mark("console:response");
    results.show(target, result);
    // After the next paint: the grid is on screen, not merely in the DOM.
    requestAnimationFrame(() => setTimeout(() => {
      performance.measure("console:grid-render", "console:response");
      $("run-status").textContent = `${result.row_count.toLocaleString()} rows`;
    }, 0));
    if (target.sql) renderHistory(remember(target.sql, result.row_count));
  } catch (error) {
    $("run-status").textContent = "Failed";
    showError(error, target.sql);
  } finally {
    $("run").disabled = false;
    // A counter the browser tests wait on: "this run has finished", success or not.
    runs += 1;
    document.body.dataset.runs = String(runs);
  }
}

function renderHistory(entries) {
  $("history-list").replaceChildren(...entries.map((entry) => el("li", {},
    el("button", { type: "button", class: "link", title: entry.sql, onclick: () => setSql(editor, entry.sql),
                   text: entry.sql.replace(/\s+/g, " ").slice(0, 80) }),
    el("span", { class: "meta", text: ` ${entry.rows ?? "?"} rows · ${new Date(entry.at).toLocaleString()}` }))));
}

async function start(who, logout) {
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").textContent = `Signed in as ${who}`;
  $("logout").hidden = false;
  $("logout").addEventListener("click", logout);
  const runSql = () => run({ sql: getSql(editor) });
  editor = createEditor($("editor"), { onRun: runSql, doc: sharedSql() ?? DEFAULT_SQL });
  results = new Results();
  $("run").addEventListener("click", runSql);
  $("share").addEventListener("click", async () => {
    const link = shareLink(getSql(editor));
    $("share-link").value = link;
    $("share-box").hidden = false;
    $("share-link").select();
    try {
      await navigator.clipboard.writeText(link);
      $("share-status").textContent = "Copied to the clipboard.";
    } catch {
      $("share-status").textContent = "Copy the link above.";
    }
  });
  renderHistory(readHistory());
  // The skip link focuses the editor itself: its host element is not focusable, and following
  // the #editor anchor would replace a shared query's #sql fragment.
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    editor.focus();
  });
  const pick = (table) => {
    setSql(editor, `SELECT *\nFROM ${table}\nLIMIT 100`);
    editor.focus();
  };
  loadNamedQueries($("named"), run);
  setCompletionSchema(editor, await loadSchema(pick));
  document.body.dataset.ready = "true";
  performance.mark("console:interactive");
}

async function main() {
  const config = await (await fetch("config.json", { cache: "no-store" })).json();
  $("login").hidden = false;
  $("login-auth0").hidden = true;
  await setupLogin(config, start);
  performance.mark("console:login-ready");
}

main().catch((error) => {
  $("login-error").textContent = `The console could not start: ${error.message}`;
  $("login-error").hidden = false;
});
