// Charts: time series drawn by uPlot (small and fast: canvas, no DOM per point), and ranked
// bars in plain HTML for "top N" lists.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777"];

export type Line = { label: string; values: (number | null)[] };

/** A colour of the stylesheet's (canvas strokes cannot read CSS variables). */
function themed(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function TimeChart({
  title,
  times,
  lines,
  unit = "",
  height = 180,
  range,
}: {
  title: string;
  times: number[];
  lines: Line[];
  unit?: string;
  height?: number;
  /** The x axis's span in Unix seconds (else the points'). */
  range?: [number, number];
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const node = box.current;
    if (!node) return;
    const muted = themed("--muted");
    const grid = themed("--grid");
    const options: uPlot.Options = {
      width: Math.max(240, node.clientWidth),
      height,
      legend: { show: lines.length > 1 },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, ...(range ? { range: () => range } : {}) }, y: { range: (_u, lo, hi) => [Math.min(0, lo), hi > 0 ? hi * 1.1 : 1] } },
      axes: [
        { stroke: muted, grid: { stroke: grid } },
        {
          stroke: muted,
          grid: { stroke: grid },
          size: 60,
          values: (_u, splits) => splits.map((v) => `${compact(v)}${unit}`),
        },
      ],
      series: [
        {},
        ...lines.map((line, i) => ({
          label: line.label,
          stroke: PALETTE[i % PALETTE.length],
          fill: lines.length === 1 ? PALETTE[i % PALETTE.length] + "22" : undefined,
          width: 2,
          // A line needs two values to show: a lone value (latency in one busy minute) is a dot.
          points: { show: line.values.filter((v) => v !== null).length < 3, size: 6 },
        })),
      ],
    };
    const plot = new uPlot(options, [times, ...lines.map((l) => l.values)] as uPlot.AlignedData, node);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(240, node.clientWidth), height }));
    resize.observe(node);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [times, lines, height, unit, range?.[0], range?.[1]]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      {times.length === 0 ? <p class="muted chart-empty">No calls in this range.</p> : <div ref={box} />}
    </figure>
  );
}

function compact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${+(value / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return `${+value.toFixed(abs < 1 && abs > 0 ? 3 : 1)}`;
}

export function Bars({
  title,
  rows,
  format,
}: {
  title: string;
  rows: { label: string; value: number }[];
  format: (value: number) => string;
}) {
  const top = Math.max(0, ...rows.map((r) => r.value));
  return (
    <figure class="bars">
      <figcaption>{title}</figcaption>
      {rows.length === 0 ? (
        <p class="muted">Nothing in this range.</p>
      ) : (
        <ol>
          {rows.map((row) => (
            <li>
              <span class="bar-label" title={row.label}>
                {row.label}
              </span>
              <span class="bar-track">
                <span class="bar-fill" style={{ width: `${top ? (100 * row.value) / top : 0}%` }} />
              </span>
              <span class="bar-value">{format(row.value)}</span>
            </li>
          ))}
        </ol>
      )}
    </figure>
  );
}
