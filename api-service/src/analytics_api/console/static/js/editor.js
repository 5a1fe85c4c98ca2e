// The SQL editor: CodeMirror 6 with SQL highlighting, completion of the caller's tables and
// columns (from /schema), and Ctrl/Cmd-Enter to run. Tab is left to the browser so keyboard
// users can move out of the editor (no indentWithTab).
import {
  EditorView, EditorState, Compartment, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, placeholder, defaultKeymap, history, historyKeymap, syntaxHighlighting, defaultHighlightStyle,
  bracketMatching, autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap, sql, PostgreSQL,
} from "../vendor/vendor.js";

const language = new Compartment();
// console.css cannot reach into the shadow root, so the editor's look is set here.
const theme = EditorView.theme({
  "&": { minHeight: "8rem", maxHeight: "22rem", fontSize: "13px", backgroundColor: "#ffffff", color: "#1b1f24" },
  "&.cm-focused": { outline: "3px solid #1f6feb" },
  ".cm-scroller": { fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace' },
  ".cm-gutters": { backgroundColor: "#f6f8fa", color: "#57606a", borderRight: "1px solid #d0d7de" },
});
// DuckDB's SQL is closest to PostgreSQL's among the dialects lang-sql ships.
const sqlFor = (schema) => sql({ dialect: PostgreSQL, schema, upperCaseKeywords: true });

// The editor lives in a shadow root: CodeMirror then injects its styles as constructed
// stylesheets (adoptedStyleSheets) instead of <style> elements, which the console's
// Content-Security-Policy (style-src 'self', no 'unsafe-inline') would block.
export function createEditor(host, { onRun, doc = "" }) {
  const run = () => {
    onRun();
    return true;
  };
  const root = host.attachShadow({ mode: "open" });
  return new EditorView({
    parent: root,
    root,
    state: EditorState.create({
      doc,
      extensions: [
        // First, so Mod-Enter runs the query instead of inserting a blank line.
        keymap.of([{ key: "Mod-Enter", run, preventDefault: true }]),
        lineNumbers(), highlightActiveLineGutter(), highlightActiveLine(), drawSelection(), history(),
        bracketMatching(), closeBrackets(), autocompletion(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap]),
        placeholder("SELECT … (Ctrl+Enter or Cmd+Enter runs it)"),
        language.of(sqlFor({})),
        theme,
        EditorView.contentAttributes.of({ "aria-label": "SQL query", "aria-describedby": "editor-help" }),
      ],
    }),
  });
}

export function setCompletionSchema(view, schema) {
  view.dispatch({ effects: language.reconfigure(sqlFor(schema)) });
}

export function getSql(view) {
  return view.state.doc.toString();
}

export function setSql(view, text) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
}

// Selects [from, to) and focuses the editor there, so the error's spot is visible and the next
// keystroke fixes it (the error text itself is announced by its role=alert box).
export function selectRange(view, from, to) {
  const length = view.state.doc.length;
  const anchor = Math.min(from, length);
  view.dispatch({ selection: { anchor, head: Math.min(Math.max(to, anchor), length) }, scrollIntoView: true });
  view.focus();
}

// Where in `text` the API's error message points: its "near '…'" context for parse errors, or
// the first quoted name it mentions (a table, column or function). Returns {from, to} or null.
export function locateError(text, message) {
  const near = message.match(/near '((?:[^'\\]|\\.)*)'/) || message.match(/near "([^"]*)"/);
  if (near) {
    const spot = near[1].replace(/\\'/g, "'");
    const at = text.lastIndexOf(spot);
    if (at >= 0) {
      const token = spot.match(/(\S+)\s*$/);
      const to = at + spot.trimEnd().length;
      return { from: token ? to - token[1].length : at, to };
    }
  }
  const names = [...message.matchAll(/["'`]([^"'`]{1,80})["'`]/g)].map((m) => m[1]);
  const fn = message.match(/function (\w+)/);
  if (fn) names.unshift(fn[1]);
  const lower = text.toLowerCase();
  for (const name of names) {
    const at = lower.indexOf(name.toLowerCase());
    if (at >= 0) return { from: at, to: at + name.length };
  }
  return null;
}

export function lineAndColumn(text, offset) {
  const before = text.slice(0, offset).split("\n");
  return { line: before.length, column: before[before.length - 1].length + 1 };
}
