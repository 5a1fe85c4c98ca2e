// The results panel: the metadata line, the grid and chart tabs, and downloads in the API's own
// formats (the same request again with format=csv|parquet|arrow, so the file is exactly what
// /query returns to any client).
import { runTarget } from "./api.js";
import { ChartView } from "./chart.js";
import { Grid } from "./grid.js";

const EXTENSIONS = { csv: "csv", parquet: "parquet", arrow: "arrow" };
const $ = (id) => document.getElementById(id);

export class Results {
  constructor() {
    this.grid = new Grid($("grid"));
    this.chart = new ChartView($("chart"));
    this.target = null;
    this.result = null;
    for (const tab of document.querySelectorAll("[role=tab]")) {
      tab.addEventListener("click", () => this.showTab(tab.id));
      tab.addEventListener("keydown", (event) => {
        if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
          const other = tab.id === "tab-table" ? "tab-chart" : "tab-table";
          this.showTab(other);
          $(other).focus();
        }
      });
    }
    for (const button of document.querySelectorAll("[data-download]")) {
      button.addEventListener("click", () => this.download(button.dataset.download));
    }
  }

  showTab(id) {
    for (const tab of document.querySelectorAll("[role=tab]")) {
      const selected = tab.id === id;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(tab.getAttribute("aria-controls")).hidden = !selected;
    }
    if (id === "tab-chart" && this.result && this.chart.rows !== this.result.data) {
      this.chart.show(this.result.columns, this.result.data);
    }
  }

  show(target, result) {
    this.target = target;
    this.result = result;
    $("results").hidden = false;
    const parts = [`${result.row_count.toLocaleString()} rows`, `${result.execution_time_ms} ms`,
                   `snapshot ${result.snapshot_version}`];
    if (result.truncated) parts.push("truncated by the row cap");
    $("result-meta").textContent = parts.join(" · ");
    $("result-meta").classList.toggle("warn", Boolean(result.truncated));
    this.grid.render(result.columns, result.data);
    if (!$("chart").hidden) this.chart.show(result.columns, result.data);
  }

  async download(format) {
    const status = $("download-status");
    status.textContent = `Preparing ${format.toUpperCase()}…`;
    try {
      const response = await runTarget(this.target, format);
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = `${this.target.name || "query"}.${EXTENSIONS[format]}`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      status.textContent = `Downloaded ${link.download}`;
    } catch (error) {
      status.textContent = `Download failed: ${error.message}`;
    }
  }
}
