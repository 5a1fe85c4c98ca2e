// The one ES module the console imports: only the names it uses, so esbuild can drop the rest.
export { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection,
         placeholder } from "@codemirror/view";
export { EditorState, Compartment } from "@codemirror/state";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export { syntaxHighlighting, defaultHighlightStyle, bracketMatching, indentOnInput } from "@codemirror/language";
export { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
export { sql, PostgreSQL, StandardSQL } from "@codemirror/lang-sql";
export { Chart, BarController, LineController, ScatterController, BarElement, LineElement, PointElement,
         LinearScale, CategoryScale, Legend, Tooltip, Filler } from "chart.js";
export { createAuth0Client } from "@auth0/auth0-spa-js";
