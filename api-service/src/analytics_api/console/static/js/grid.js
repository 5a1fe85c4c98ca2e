// A virtual-scrolling result grid: only the rows in view (plus a margin) exist in the DOM, so
// 10,000 rows cost the same to draw as 30. Rows have one fixed height (CSS --row-height), which is
// what lets the scroll position map straight to a row index without measuring anything.
import { cellText, el, isNumericType } from "./format.js";

const ROW_HEIGHT = 28;
const OVERSCAN = 10;

export class Grid {
  constructor(viewport) {
    this.viewport = viewport;
    this.columns = [];
    this.rows = [];
    this.first = -1;
    this.header = el("div", { class: "grid-row grid-header", role: "row", "aria-rowindex": "1" });
    this.spacer = el("div", { class: "grid-spacer" });
    this.body = el("div", { class: "grid-body", role: "rowgroup" });
    this.spacer.append(this.body);
    viewport.replaceChildren(this.header, this.spacer);
    let pending = false;
    viewport.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        this.draw();
      });
    });
  }

  // Column widths come from the header and a sample of values, so the grid needs no layout pass.
  render(columns, rows) {
    this.columns = columns;
    this.rows = rows;
    const sample = rows.slice(0, 200);
    const widths = columns.map((c) => {
      const longest = sample.reduce((m, r) => Math.max(m, cellText(r[c.name]).length), c.name.length + c.type.length + 2);
      return `${Math.min(Math.max(longest + 2, 6), 48)}ch`;
    });
    this.viewport.style.setProperty("--grid-columns", widths.join(" "));
    this.viewport.setAttribute("aria-rowcount", String(rows.length + 1));
    this.viewport.setAttribute("aria-colcount", String(columns.length));
    this.header.replaceChildren(...columns.map((c) =>
      el("div", { class: isNumericType(c.type) ? "cell num" : "cell", role: "columnheader", title: c.type },
        c.name, el("span", { class: "type", text: ` ${c.type}` }))));
    this.spacer.style.height = `${rows.length * ROW_HEIGHT}px`;
    this.viewport.scrollTop = 0;
    this.first = -1;
    this.draw();
  }

  draw() {
    const visible = Math.ceil(this.viewport.clientHeight / ROW_HEIGHT) + 1;
    const top = Math.floor(this.viewport.scrollTop / ROW_HEIGHT);
    const first = Math.max(0, top - OVERSCAN);
    if (first === this.first && this.body.childElementCount) return;
    this.first = first;
    const last = Math.min(this.rows.length, top + visible + OVERSCAN);
    const numeric = this.columns.map((c) => isNumericType(c.type));
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i += 1) {
      const row = this.rows[i];
      const line = document.createElement("div");
      line.className = "grid-row";
      line.setAttribute("role", "row");
      line.setAttribute("aria-rowindex", String(i + 2));
      this.columns.forEach((c, j) => {
        const cell = document.createElement("div");
        const value = row[c.name];
        cell.className = value === null ? "cell null" : numeric[j] ? "cell num" : "cell";
        cell.setAttribute("role", "cell");
        cell.textContent = cellText(value);
        line.append(cell);
      });
      fragment.append(line);
    }
    this.body.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    this.body.replaceChildren(fragment);
  }
}
