// Time-series charts on uPlot (vendor/uPlot.iife.min.js, a global). uPlot sizes its elements
// from script (el.style), which the console's CSP allows; it needs no inline markup.

import { h, clear } from "./dom.js";
import { emptyState } from "./ui.js";

const live = new Set(); // charts on the current page: destroyed when the page changes

export const COLORS = {
  indigo: "#6366f1", emerald: "#10b981", blue: "#3b82f6", red: "#ef4444",
  violet: "#8b5cf6", amber: "#f59e0b", teal: "#0d9488", slate: "#64748b",
};

const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
const AXIS = { stroke: "#6b7280", font: FONT, grid: { stroke: "#eef0f3", width: 1 }, ticks: { stroke: "#e5e7eb", width: 1, size: 4 } };

function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

// x: unix seconds; series: [{label, values, color, bars?, fill?, dash?}];
// fmt(v) formats values (axis and legend); step: seconds per bucket (bars are centred on it).
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n) => String(n).padStart(2, "0");

// Axis ticks in UTC: "14:00", and the date where a day starts or ticks are days apart.
function timeTicks(u, splits, axis, space, incr) {
  return splits.map((ts) => {
    const d = new Date(ts * 1000);
    const day = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
    if (incr >= 86400) return day;
    const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
    return d.getUTCHours() === 0 && d.getUTCMinutes() === 0 ? `${day}\n${hm}` : hm;
  });
}

function stamp(ts, step) {
  const d = new Date(ts * 1000);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  return step >= 86400 ? `${day} (UTC)` : `${day} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

// A hover card with the bucket's time and every series' value.
function tooltip(series, fmt, step) {
  let box;
  return {
    hooks: {
      init: (u) => {
        box = h("div", { class: "chart-tip", hidden: true });
        u.over.append(box);
        u.over.addEventListener("mouseleave", () => { box.hidden = true; });
      },
      setCursor: (u) => {
        const i = u.cursor.idx;
        if (i === null || i === undefined || u.cursor.left < 0) { box.hidden = true; return; }
        clear(box, h("div", { class: "chart-tip-time" }, stamp(u.data[0][i], step)),
          series.map((s, k) => {
            const v = u.data[k + 1][i];
            return h("div", { class: "chart-tip-row" }, h("span", { class: "chart-tip-dot", dataset: { k: String(k) } }), h("span", { class: "chart-tip-label" }, s.label),
              h("span", { class: "chart-tip-value" }, v === null || v === undefined ? "—" : fmt(v)));
          }));
        for (const dot of box.querySelectorAll(".chart-tip-dot")) dot.style.background = series[Number(dot.dataset.k)].color;
        box.hidden = false;
        const left = u.cursor.left, w = box.offsetWidth, W = u.over.clientWidth;
        box.style.left = `${left + 14 + w > W ? Math.max(0, left - w - 14) : left + 14}px`;
        box.style.top = `${Math.max(0, Math.min(u.cursor.top, u.over.clientHeight - box.offsetHeight))}px`;
      },
    },
  };
}

// x: unix seconds; series: [{label, values, color, bars?, fill?, dash?}];
// fmt(v) formats values (axis and tooltip); step: seconds per bucket (bars are centred on it).
export function timeChart(host, { x, series, fmt = String, step = 3600, height = 200, emptyText = "No traffic in this range" }) {
  const hasData = series.some((s) => s.values.some((v) => v !== null && v !== undefined && v !== 0));
  if (!window.uPlot || !hasData || !x.length) {
    clear(host, emptyState({ title: emptyText, text: window.uPlot ? "Pick a longer range, or send a request to a model." : "The chart library did not load.", compact: true, iconName: "usage" }));
    host.classList.add("is-empty");
    return null;
  }
  const uPlot = window.uPlot;
  const anyBars = series.some((s) => s.bars);
  const opts = {
    width: Math.max(host.clientWidth, 280),
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    padding: [10, 10, 0, 0],
    scales: {
      x: { time: true, range: anyBars ? (u, min, max) => [min - step / 2, max + step / 2] : undefined },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.12 : 1] },
    },
    axes: [
      { ...AXIS, space: 64, values: timeTicks },
      { ...AXIS, size: 60, values: (u, vals) => vals.map((v) => fmt(v)) },
    ],
    series: [
      {},
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: s.bars ? 0 : 1.75,
        dash: s.dash,
        fill: s.bars ? alpha(s.color, 0.85) : s.fill === false ? undefined : alpha(s.color, 0.08),
        paths: s.bars ? uPlot.paths.bars({ size: [0.72, 28], gap: 1 }) : undefined,
        // a lone bucket draws no line: show the points where there are few
        points: { show: !s.bars && s.values.filter((v) => v !== null && v !== undefined).length <= 3, size: 6, fill: s.color },
        spanGaps: false,
      })),
    ],
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    plugins: [tooltip(series, fmt, step)],
  };
  clear(host);
  host.classList.remove("is-empty");
  const chart = new uPlot(opts, [x, ...series.map((s) => s.values)], host);
  host.append(h("div", { class: "chart-legend" }, series.map((s) => {
    const dot = h("span", { class: "legend-dot" });
    dot.style.background = s.color;
    return h("span", { class: "chart-legend-item" }, dot, s.label);
  })));
  const ro = new ResizeObserver(() => {
    const w = host.clientWidth;
    if (w > 0 && Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height });
  });
  ro.observe(host);
  live.add({ chart, ro });
  return chart;
}

export function destroyCharts() {
  for (const { chart, ro } of live) {
    ro.disconnect();
    chart.destroy();
  }
  live.clear();
}

// A card body that holds one chart.
export function chartHost(testid) {
  return h("div", { class: "chart", testid });
}
