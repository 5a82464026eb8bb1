import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface ChartSeries {
  label: string;
  color: string;
  values: (number | null)[];
  dash?: number[];
}

/**
 * A uPlot time chart sized to its container. `points` (how many points carry data) is exposed as
 * data-points, so a test can tell a chart drawn with data from an empty one.
 */
export function TimeChart({ id, title, unit, x, series, points, fixed }: { id: string; title: string; unit: string; x: number[]; series: ChartSeries[]; points: number; fixed?: [number, number] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.label).join('|');

  useEffect(() => {
    const el = box.current!;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 180,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => fixed ?? [0, max > 0 ? max * 1.15 : 1] } },
      axes: [
        { stroke: '#5b6475', grid: { stroke: '#eef0f4' }, ticks: { stroke: '#e2e5eb' } },
        { stroke: '#5b6475', grid: { stroke: '#eef0f4' }, ticks: { stroke: '#e2e5eb' }, size: 56, label: unit, labelSize: 18 },
      ],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, dash: s.dash, spanGaps: false, points: { show: false } }))],
    };
    const u = new uPlot(opts, [x, ...series.map((s) => s.values)], el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: 180 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Rebuilt only when the series change; data updates go through setData below.
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([x, ...series.map((s) => s.values)]);
  }, [x, series]);

  return (
    <figure class="chart" id={id} data-testid={id} data-points={points}>
      <figcaption>{title}</figcaption>
      <div ref={box} class="chart-box" />
    </figure>
  );
}
