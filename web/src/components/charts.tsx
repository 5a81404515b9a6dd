// Canvas line charts (uPlot) for metric histories, and SVG scatter / parallel-coordinates plots
// for comparing params against metrics across runs.
import { useEffect, useMemo, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatNumber } from "../format";

export type XAxis = "step" | "time" | "relative";

export interface Series {
  label: string;
  color: string;
  /** Points sorted by x. */
  points: { step: number; timestamp: number; value: number }[];
}

/** Exponential moving average with TensorBoard's debiasing, so early points are not pulled to 0. */
export function smooth(values: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return values;
  let last = 0;
  let count = 0;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return v;
    last = last * weight + (1 - weight) * v;
    count += 1;
    return last / (1 - Math.pow(weight, count));
  });
}

function xOf(p: Series["points"][number], axis: XAxis, start: number): number {
  if (axis === "step") return p.step;
  if (axis === "time") return p.timestamp / 1000;
  return (p.timestamp - start) / 1000;
}

export function LineChart({
  series,
  xAxis = "step",
  logScale = false,
  smoothing = 0,
  height = 260,
  title,
  onZoom,
}: {
  series: Series[];
  xAxis?: XAxis;
  logScale?: boolean;
  smoothing?: number;
  height?: number;
  title?: string;
  onZoom?: (range: { min: number; max: number } | null) => void;
}) {
  const container = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(600);
  const zoomRef = useRef(onZoom);
  zoomRef.current = onZoom;

  useEffect(() => {
    const el = container.current;
    if (!el) return;
    const observer = new ResizeObserver((entries) => {
      const w = Math.floor(entries[0].contentRect.width);
      if (w > 0) setWidth(w);
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const data = useMemo(() => {
    const tables = series.map((s) => {
      const start = s.points.length ? Math.min(...s.points.slice(0, 1000).map((p) => p.timestamp)) : 0;
      const byX = new Map<number, number>();
      for (const p of s.points) {
        let v = p.value;
        if (logScale && !(v > 0)) continue;
        if (!Number.isFinite(v)) continue;
        byX.set(xOf(p, xAxis, start), v);
      }
      const xs = [...byX.keys()].sort((a, b) => a - b);
      const ys = smooth(
        xs.map((x) => byX.get(x) ?? null),
        smoothing,
      );
      return [xs, ys] as uPlot.AlignedData;
    });
    if (tables.length === 0) return [[]] as unknown as uPlot.AlignedData;
    return uPlot.join(tables as uPlot.AlignedData[]);
  }, [series, xAxis, logScale, smoothing]);

  const pointCount = series.reduce((n, s) => n + s.points.length, 0);

  useEffect(() => {
    const el = container.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width,
      height,
      title,
      scales: {
        x: { time: xAxis === "time" },
        y: logScale ? { distr: 3 } : {},
      },
      axes: [
        {
          label: xAxis === "step" ? "Step" : xAxis === "time" ? "Time" : "Relative time (s)",
          stroke: "#475569",
          grid: { stroke: "#e2e8f0" },
        },
        { stroke: "#475569", grid: { stroke: "#e2e8f0" }, values: (_u, vals) => vals.map((v) => formatNumber(v)), size: 64 },
      ],
      series: [
        { label: xAxis === "step" ? "step" : "time" },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          spanGaps: true,
          points: { show: s.points.length < 60 },
          value: (_u: uPlot, v: number | null) => (v === null ? "—" : formatNumber(v)),
        })),
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      hooks: {
        // Only a drag by the user counts as zooming; uPlot also sets scales on its own.
        setSelect: [
          (u) => {
            if (!zoomRef.current || u.select.width < 2) return;
            const min = u.posToVal(u.select.left, "x");
            const max = u.posToVal(u.select.left + u.select.width, "x");
            zoomRef.current({ min, max });
          },
        ],
      },
    };
    const plot = new uPlot(opts, data, el);
    el.dataset.points = String(pointCount);
    el.dataset.rendered = "true";
    return () => {
      plot.destroy();
      delete el.dataset.rendered;
    };
  }, [data, width, height, title, xAxis, logScale, series, pointCount]);

  return <div className="line-chart" data-testid="metric-chart" ref={container} role="img" aria-label={title ?? "Metric chart"} />;
}

/** A metric each run logged once (an evaluation score, say) as one bar per run, the way MLflow
 * draws it, instead of a lone point on a step axis. */
export function BarChart({ bars, title, height = 260 }: { bars: { label: string; color: string; value: number }[]; title?: string; height?: number }) {
  const width = 560;
  const pad = { l: 64, r: 16, t: title ? 28 : 12, b: 20 };
  const plotW = width - pad.l - pad.r;
  const rowH = Math.min(36, (height - pad.t - pad.b) / Math.max(1, bars.length));
  const values = bars.map((b) => b.value).filter(Number.isFinite);
  const lo = Math.min(0, ...values);
  const hi = Math.max(0, ...values);
  const span = hi - lo || 1;
  const xOf = (v: number) => pad.l + ((v - lo) / span) * plotW;
  const svgHeight = pad.t + pad.b + rowH * bars.length;
  return (
    <svg className="bar-chart" viewBox={`0 0 ${width} ${svgHeight}`} width="100%" role="img" aria-label={title ?? "Metric"} data-testid="bar-chart" data-rendered="true">
      {title && (
        <text x={width / 2} y={18} textAnchor="middle" className="chart-title">
          {title}
        </text>
      )}
      <line x1={xOf(0)} x2={xOf(0)} y1={pad.t} y2={svgHeight - pad.b} className="bar-axis" />
      {bars.map((b, i) => {
        const y = pad.t + i * rowH;
        const x0 = xOf(Math.min(0, b.value));
        const w = Math.abs(xOf(b.value) - xOf(0));
        return (
          <g key={i} data-bar={b.label}>
            <rect x={x0} y={y + rowH * 0.15} width={Math.max(1, w)} height={rowH * 0.7} fill={b.color} fillOpacity={0.85}>
              <title>{`${b.label}: ${formatNumber(b.value)}`}</title>
            </rect>
            <text x={pad.l - 6} y={y + rowH / 2} textAnchor="end" dominantBaseline="middle" className="tick">
              {b.label.length > 9 ? `${b.label.slice(0, 8)}…` : b.label}
            </text>
            <text x={xOf(Math.max(0, b.value)) + 4} y={y + rowH / 2} dominantBaseline="middle" className="bar-value">
              {formatNumber(b.value)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

export interface ComparePoint {
  id: string;
  label: string;
  color: string;
  values: Record<string, number | string | undefined>;
}

function numericRange(values: number[]): [number, number] {
  let min = Math.min(...values);
  let max = Math.max(...values);
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min === max) {
    min -= 0.5;
    max += 0.5;
  }
  return [min, max];
}


/** An axis for a column: numeric when every value parses as a number, else categorical. */
function axisOf(points: ComparePoint[], key: string) {
  const raw = points.map((p) => p.values[key]).filter((v) => v !== undefined && v !== "") as (number | string)[];
  const numbers = raw.map(Number);
  if (raw.length > 0 && numbers.every(Number.isFinite)) {
    const [min, max] = numericRange(numbers);
    return { kind: "number" as const, pos: (v: unknown) => (v === undefined || v === "" ? null : (Number(v) - min) / (max - min)), min, max, ticks: [min, (min + max) / 2, max].map(formatNumber) };
  }
  const categories = [...new Set(raw.map(String))].sort();
  return {
    kind: "category" as const,
    pos: (v: unknown) => (v === undefined ? null : categories.length === 1 ? 0.5 : categories.indexOf(String(v)) / (categories.length - 1)),
    min: 0,
    max: 1,
    ticks: categories,
  };
}

export function ScatterPlot({ points, xKey, yKey, width = 520, height = 320 }: { points: ComparePoint[]; xKey: string; yKey: string; width?: number; height?: number }) {
  const pad = { l: 64, r: 16, t: 16, b: 44 };
  const x = axisOf(points, xKey);
  const y = axisOf(points, yKey);
  const plotW = width - pad.l - pad.r;
  const plotH = height - pad.t - pad.b;
  // A little room inside the frame so points on the extremes are not cut in half.
  const inset = (v: number) => 0.05 + 0.9 * v;
  const drawn = points
    .map((p) => ({ p, px: x.pos(p.values[xKey]), py: y.pos(p.values[yKey]) }))
    .filter((d) => d.px !== null && d.py !== null);
  return (
    <svg className="scatter" width={width} height={height} role="img" aria-label={`${yKey} against ${xKey}`} data-testid="scatter-plot">
      <rect x={pad.l} y={pad.t} width={plotW} height={plotH} className="plot-area" />
      {x.ticks.slice(0, 8).map((t, i, all) => (
        <text key={`x${i}`} x={pad.l + plotW * inset(all.length === 1 ? 0.5 : i / (all.length - 1))} y={height - pad.b + 16} textAnchor="middle" className="tick">
          {t}
        </text>
      ))}
      {y.ticks.slice(0, 8).map((t, i, all) => (
        <text key={`y${i}`} x={pad.l - 6} y={pad.t + plotH - plotH * inset(all.length === 1 ? 0.5 : i / (all.length - 1))} textAnchor="end" dominantBaseline="middle" className="tick">
          {t}
        </text>
      ))}
      <text x={pad.l + plotW / 2} y={height - 6} textAnchor="middle" className="axis-label">
        {xKey}
      </text>
      <text x={12} y={pad.t + plotH / 2} textAnchor="middle" className="axis-label" transform={`rotate(-90 12 ${pad.t + plotH / 2})`}>
        {yKey}
      </text>
      {drawn.map(({ p, px, py }) => (
        <circle key={p.id} data-run={p.id} cx={pad.l + inset(px as number) * plotW} cy={pad.t + plotH - inset(py as number) * plotH} r={5} fill={p.color} fillOpacity={0.8}>
          <title>{`${p.label}: ${xKey}=${p.values[xKey]}, ${yKey}=${p.values[yKey]}`}</title>
        </circle>
      ))}
    </svg>
  );
}

export function ParallelCoordinates({ points, keys, width = 900, height = 320 }: { points: ComparePoint[]; keys: string[]; width?: number; height?: number }) {
  const pad = { l: 40, r: 40, t: 36, b: 28 };
  const plotH = height - pad.t - pad.b;
  const axes = keys.map((k) => ({ key: k, axis: axisOf(points, k) }));
  const xOfAxis = (i: number) => pad.l + (keys.length === 1 ? 0 : ((width - pad.l - pad.r) * i) / (keys.length - 1));
  return (
    <svg className="parallel" width={width} height={height} role="img" aria-label="Parallel coordinates" data-testid="parallel-coordinates">
      {points.map((p) => {
        const coords = axes
          .map(({ key, axis }, i) => {
            const pos = axis.pos(p.values[key]);
            return pos === null ? null : `${xOfAxis(i)},${pad.t + plotH - pos * plotH}`;
          })
          .filter(Boolean);
        return (
          <polyline key={p.id} data-run={p.id} points={coords.join(" ")} fill="none" stroke={p.color} strokeWidth={1.6} strokeOpacity={0.85}>
            <title>{p.label}</title>
          </polyline>
        );
      })}
      {axes.map(({ key, axis }, i) => (
        <g key={key} className="pc-axis">
          <line x1={xOfAxis(i)} x2={xOfAxis(i)} y1={pad.t} y2={pad.t + plotH} />
          <text x={xOfAxis(i)} y={pad.t - 14} textAnchor="middle" className="axis-label">
            {key}
          </text>
          <text x={xOfAxis(i) + 4} y={pad.t + plotH + 14} className="tick">
            {axis.kind === "number" ? formatNumber(axis.min) : axis.ticks[0]}
          </text>
          <text x={xOfAxis(i) + 4} y={pad.t - 2} className="tick">
            {axis.kind === "number" ? formatNumber(axis.max) : axis.ticks[axis.ticks.length - 1]}
          </text>
        </g>
      ))}
    </svg>
  );
}
