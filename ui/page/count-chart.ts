/**
 * A small uPlot chart of a service's active endpoints and IPs over the last
 * hour. The two lines differ in dash as well as colour, and the legend names
 * them with their latest values, so nothing is told by colour alone.
 */
import uPlot from 'uplot';
import type { Series } from './count-history.js';

/** A chart that follows one service's series; update() redraws in place. */
export class CountChart {
  readonly element: HTMLElement;
  private readonly plot: uPlot;

  constructor(label: string, width = 300, height = 110) {
    this.element = document.createElement('figure');
    this.element.className = 'chart';
    this.element.setAttribute('aria-label', label);
    const caption = document.createElement('figcaption');
    caption.textContent = label;
    this.element.append(caption);
    this.plot = new uPlot(
      {
        width,
        height,
        cursor: { show: false },
        legend: { show: true, live: false },
        scales: {
          // Always the last hour up to the newest sample, however few samples there are.
          x: {
            time: true,
            range: (u) => {
              const t = u.data[0];
              const end = t.length > 0 ? t[t.length - 1]! : Math.floor(Date.now() / 1000);
              return [end - 3600, end];
            },
          },
          y: { range: (_u, _min, max) => [0, Math.max(1, max)] },
        },
        axes: [
          { stroke: '#333', grid: { stroke: '#ddd' }, size: 24, font: '10px sans-serif' },
          { stroke: '#333', grid: { stroke: '#ddd' }, size: 36, font: '10px sans-serif' },
        ],
        series: [
          {},
          { label: 'endpoints', stroke: '#1f4e9c', width: 2 },
          { label: 'IPs', stroke: '#8a3b00', width: 2, dash: [6, 4] },
        ],
      },
      [[], [], []],
      this.element,
    );
  }

  /** Shows the series (the last hour, up to now). */
  update(s: Series): void {
    this.plot.setData([s.t, s.endpoints, s.ips]);
    // How many points are drawn, for tests and the benchmark.
    this.element.dataset.points = String(s.t.length);
  }
}
