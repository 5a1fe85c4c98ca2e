// The chart view (Chart.js): bar, line, area or scatter over the result's columns. Defaults come
// from the column types: a temporal x draws a line, a numeric x a scatter, anything else bars;
// y is the first numeric column that is not x. An optional series column splits y into lines/bars.
import {
  Chart, BarController, LineController, ScatterController, BarElement, LineElement, PointElement,
  LinearScale, CategoryScale, Legend, Tooltip, Filler,
} from "../vendor/vendor.js";
import { cellText, el, isNumericType, isTemporalType } from "./format.js";

Chart.register(BarController, LineController, ScatterController, BarElement, LineElement, PointElement,
  LinearScale, CategoryScale, Legend, Tooltip, Filler);

// Colour-blind-safe palette (Okabe-Ito), dark enough to read on the white background.
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
const MAX_SERIES = 12;

export function defaults(columns) {
  const numeric = columns.filter((c) => isNumericType(c.type));
  const temporal = columns.find((c) => isTemporalType(c.type));
  const label = columns.find((c) => !isNumericType(c.type));
  const x = temporal || label || columns[0];
  const y = numeric.find((c) => c !== x) || columns.find((c) => c !== x) || x;
  const type = temporal ? "line" : isNumericType(x?.type) ? "scatter" : "bar";
  return { type, x: x?.name, y: y?.name, series: "" };
}

// A scatter needs a numeric x; over text or dates it is drawn as unjoined points on categories.
function isTrueScatter(spec, columns) {
  return spec.type === "scatter" && isNumericType(columns.find((c) => c.name === spec.x)?.type);
}

function datasets(rows, spec, scatter) {
  const groups = new Map();
  for (const row of rows) {
    const key = spec.series ? cellText(row[spec.series]) : spec.y;
    if (!groups.has(key)) {
      if (groups.size >= MAX_SERIES) continue;
      groups.set(key, []);
    }
    groups.get(key).push(row);
  }
  const labels = scatter ? undefined : [...new Set(rows.map((r) => cellText(r[spec.x])))];
  const sets = [...groups.entries()].map(([name, members], i) => {
    const colour = PALETTE[i % PALETTE.length];
    let data;
    if (scatter) {
      data = members.map((r) => ({ x: Number(r[spec.x]), y: Number(r[spec.y]) }));
    } else {
      const byLabel = new Map(members.map((r) => [cellText(r[spec.x]), Number(r[spec.y])]));
      data = labels.map((l) => (byLabel.has(l) ? byLabel.get(l) : null));
    }
    return { label: String(name), data, borderColor: colour, backgroundColor: spec.type === "area" ? `${colour}55` : colour,
             fill: spec.type === "area", pointRadius: spec.type === "scatter" ? 3 : 1,
             showLine: spec.type !== "scatter", spanGaps: true };
  });
  return { labels, datasets: sets };
}

export class ChartView {
  constructor(container) {
    this.container = container;
    this.canvas = el("canvas", { role: "img", "aria-label": "Chart of the result" });
    this.controls = el("div", { class: "chart-controls" });
    container.replaceChildren(this.controls, el("div", { class: "chart-box" }, this.canvas));
    this.chart = null;
  }

  select(label, key, options, value) {
    const id = `chart-${key}`;
    const select = el("select", { id, onchange: () => { this.spec[key] = select.value; this.draw(); } },
      ...options.map(([v, text]) => el("option", { value: v, selected: v === value, text })));
    return el("label", { for: id }, `${label} `, select);
  }

  show(columns, rows) {
    this.columns = columns;
    this.rows = rows;
    this.spec = defaults(columns);
    const names = columns.map((c) => [c.name, c.name]);
    this.controls.replaceChildren(
      this.select("Chart", "type", [["bar", "bar"], ["line", "line"], ["area", "area"], ["scatter", "scatter"]], this.spec.type),
      this.select("x", "x", names, this.spec.x),
      this.select("y", "y", names, this.spec.y),
      this.select("series", "series", [["", "(none)"], ...names], this.spec.series));
    this.draw();
  }

  draw() {
    const spec = this.spec;
    const scatter = isTrueScatter(spec, this.columns);
    const data = datasets(this.rows, spec, scatter);
    const config = {
      type: scatter ? "scatter" : spec.type === "bar" ? "bar" : "line",
      data,
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { display: data.datasets.length > 1 } },
        scales: { x: { type: scatter ? "linear" : "category", title: { display: true, text: spec.x } },
                  y: { title: { display: true, text: spec.y } } },
      },
    };
    if (this.chart) this.chart.destroy();
    this.chart = new Chart(this.canvas, config);
    this.canvas.setAttribute("aria-label", `${spec.type} chart of ${spec.y} by ${spec.x}`);
    this.container.dataset.chartType = spec.type;
    this.container.dataset.points = String(data.datasets.reduce((n, d) => n + d.data.length, 0));
  }
}
