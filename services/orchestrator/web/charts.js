// Inline SVG charts: no library, no network. A chart is redrawn whole when its data changes
// (epochs and trials arrive seconds apart, so this is cheap).

const NS = "http://www.w3.org/2000/svg";
const W = 480;
const H = 200;
const PAD = { left: 52, right: 12, top: 26, bottom: 28 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function label(value) {
  if (!isFinite(value)) return "";
  const a = Math.abs(value);
  if (a !== 0 && (a < 0.01 || a >= 1e5)) return value.toExponential(1);
  return Number(value.toPrecision(3)).toString();
}

// series: [{ name, points: [[x, y], ...], cls, dots }]; returns an <svg> element.
export function chart(series, { title = "", xLabel = "", empty = "waiting for data" } = {}) {
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  const points = series.flatMap((s) => s.points).filter(([x, y]) => isFinite(x) && isFinite(y));
  if (!points.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted" }, empty));
    return root;
  }
  let [x0, x1] = [Math.min(...points.map((p) => p[0])), Math.max(...points.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...points.map((p) => p[1])), Math.max(...points.map((p) => p[1]))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - Math.abs(y0 || 1) * 0.1, y1 + Math.abs(y1 || 1) * 0.1];
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const sy = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);

  const axes = svg("g", { class: "axes" });
  axes.append(svg("line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }));
  axes.append(svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }));
  for (const y of [y0, (y0 + y1) / 2, y1]) {
    axes.append(svg("line", { x1: PAD.left - 4, y1: sy(y), x2: PAD.left, y2: sy(y) }));
    axes.append(svg("text", { x: PAD.left - 6, y: sy(y) + 4, "text-anchor": "end" }, label(y)));
  }
  for (const x of [x0, x1]) {
    axes.append(svg("text", { x: sx(x), y: H - PAD.bottom + 16, "text-anchor": "middle" }, label(x)));
  }
  if (xLabel) {
    axes.append(svg("text", { x: (PAD.left + W - PAD.right) / 2, y: H - 4, "text-anchor": "middle", class: "muted" }, xLabel));
  }
  root.append(axes);

  const legend = svg("g", { class: "legend" });
  let lx = PAD.left + 8;
  series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => isFinite(x) && isFinite(y));
    const cls = s.cls || `series-${i}`;
    if (pts.length && !s.dots) {
      root.append(svg("polyline", { class: `line ${cls}`, points: pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ") }));
    }
    if (s.dots || pts.length === 1) {
      const g = svg("g", { class: `dots ${cls}` });
      for (const [x, y] of pts) g.append(svg("circle", { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 2.5 }));
      root.append(g);
    }
    legend.append(svg("rect", { x: lx, y: 4, width: 10, height: 10, class: `swatch ${cls}` }));
    legend.append(svg("text", { x: lx + 14, y: 13 }, s.name));
    lx += 24 + s.name.length * 7.5;
  });
  root.append(legend);
  return root;
}
