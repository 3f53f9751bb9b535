// One Istio metrics chart (uPlot): a time series per label (total/errors, p50/p95/p99), values with units.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { alignSeries, formatValue, hasData, type Chart } from "./format";

const PALETTE = ["#0066cc", "#ec7a08", "#5752d1", "#3e8635", "#009596", "#8f4700"];
const colorFor = (label: string, i: number) => (label === "errors" ? "#c9190b" : label === "p99" ? "#5752d1" : PALETTE[i % PALETTE.length]);

function options(chart: Chart, width: number, height: number): uPlot.Options {
  const fmt = (v: number | null) => formatValue(v, chart.unit);
  return {
    width, height,
    cursor: { drag: { x: false, y: false } },
    legend: { show: true, live: true },
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
    axes: [
      { stroke: "#6a737d", grid: { stroke: "#eceef1", width: 1 }, ticks: { stroke: "#d8dde3", width: 1 } },
      { stroke: "#6a737d", size: 72, grid: { stroke: "#eceef1", width: 1 }, ticks: { show: false },
        values: (_u, splits) => splits.map((v) => fmt(v)) },
    ],
    series: [
      { label: "Time" },
      ...chart.series.map((s, i) => ({
        label: s.label, stroke: colorFor(s.label, i), width: 1.6, points: { show: false },
        fill: i === 0 && chart.unit === "ops" ? "rgba(0,102,204,0.08)" : undefined,
        value: (_u: uPlot, v: number | null) => fmt(v), spanGaps: false,
      })),
    ],
  };
}

export default function MetricChart({ chart, height = 200 }: { chart: Chart; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = useRef("");

  useEffect(() => {
    const el = box.current!;
    const { xs, ys } = alignSeries(chart.series);
    const data = [xs, ...ys] as uPlot.AlignedData;
    const key = `${chart.unit}|${chart.series.map((s) => s.label).join(",")}`;
    if (plot.current && shape.current === key) {
      plot.current.setData(data);
    } else {
      plot.current?.destroy();
      plot.current = new uPlot(options(chart, Math.max(200, el.clientWidth), height), data, el);
      shape.current = key;
    }
  }, [chart, height]);

  useEffect(() => {
    const el = box.current!;
    const ro = new ResizeObserver(() => {
      if (plot.current && el.clientWidth > 0 && Math.abs(plot.current.width - el.clientWidth) > 2) {
        plot.current.setSize({ width: el.clientWidth, height });
      }
    });
    ro.observe(el);
    return () => { ro.disconnect(); plot.current?.destroy(); plot.current = null; shape.current = ""; };
  }, [height]);

  return (
    <div className="chart-card" data-testid={`chart-${chart.name}`}>
      <h3>{chart.title}<span className="chart-unit">{chart.unit}</span></h3>
      <div className="chart-box">
        <div ref={box} />
        {!hasData(chart) && <div className="chart-empty">No data for this period</div>}
      </div>
    </div>
  );
}
