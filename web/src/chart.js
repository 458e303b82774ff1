// A small SVG line chart: a few series of (x, y) points, axes with round ticks, a legend.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function ticks(lo, hi, n) {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

// series: [{name, color, points: [[x, y]], dots?}]; opts: {title, xlabel, ymin, ymax}
export function drawChart(box, series, opts = {}) {
  const W = 420, H = 200, L = 44, R = 10, T = 22, B = 30;
  const pts = series.flatMap((s) => s.points).filter((p) => p[1] != null && isFinite(p[1]));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", "data-points": String(pts.length) });
  root.append(svg("text", { x: L, y: 14, class: "chart-title" }, opts.title || ""));
  if (pts.length) {
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const x0 = 0, x1 = Math.max(opts.xmax || 0, ...xs, 1e-9);
    let y0 = opts.ymin ?? Math.min(...ys), y1 = opts.ymax ?? Math.max(...ys);
    if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
    const Y = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    for (const v of ticks(y0, y1, 4)) {
      root.append(svg("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), class: "grid" }));
      root.append(svg("text", { x: L - 4, y: Y(v) + 3, class: "tick", "text-anchor": "end" }, String(v)));
    }
    for (const v of ticks(x0, x1, 6)) {
      root.append(svg("text", { x: X(v), y: H - B + 13, class: "tick", "text-anchor": "middle" }, String(v)));
    }
    root.append(svg("text", { x: W - R, y: H - 4, class: "tick", "text-anchor": "end" }, opts.xlabel || ""));
    let lx = L + 4;
    for (const s of series) {
      const p = s.points.filter((q) => q[1] != null && isFinite(q[1]));
      if (!p.length) continue;
      root.append(svg("polyline", { points: p.map((q) => `${X(q[0]).toFixed(1)},${Y(q[1]).toFixed(1)}`).join(" "),
        fill: "none", stroke: s.color, "stroke-width": s.dots ? 1 : 1.5, "data-series": s.name }));
      if (s.dots) for (const q of p) root.append(svg("circle", { cx: X(q[0]), cy: Y(q[1]), r: 2.5, fill: s.color }));
      root.append(svg("text", { x: lx, y: T + 8, class: "legend", fill: s.color }, s.name));
      lx += 9 + s.name.length * 6;
    }
  }
  box.replaceChildren(root);
}
