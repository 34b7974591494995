// Formatting helpers and tiny DOM builders shared by the dashboard's views.

export const TERMINAL = new Set(["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"]);

export function shortState(state) {
  return (state || "JOB_STATE_UNSPECIFIED").replace("JOB_STATE_", "");
}

export function shortKind(kind, job) {
  if (kind) return kind.replace("JOB_KIND_", "").toLowerCase();
  if (job && job.backtest) return "backtest";
  if (job && job.optimize) return "optimize";
  return "train";
}

export function pct(value) {
  return `${(Number(value) || 0).toFixed(1)}%`;
}

export function duration(seconds) {
  if (seconds === undefined || seconds === null || !isFinite(seconds) || seconds < 0) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function seconds(timestamp) {
  // Proto JSON timestamps are RFC 3339 strings; absent means unset.
  if (!timestamp) return 0;
  const ms = Date.parse(timestamp);
  return Number.isNaN(ms) ? 0 : ms / 1000;
}

export function age(timestamp) {
  const t = seconds(timestamp);
  return t ? duration(Date.now() / 1000 - t) : "—";
}

export function clock(timestamp) {
  const t = seconds(timestamp);
  return t ? new Date(t * 1000).toLocaleTimeString([], { hour12: false }) : "";
}

export function num(value, digits = 4) {
  if (value === undefined || value === null) return "—";
  if (typeof value === "string") return value === "NaN" ? "n/a" : value; // proto JSON: "NaN", "Infinity"
  if (Number.isInteger(value)) return String(value);
  return Number(value).toPrecision(digits).replace(/\.?0+$/, "");
}

export function bytes(n) {
  const v = Number(n) || 0;
  if (v < 1024) return `${v} B`;
  if (v < 1024 ** 2) return `${(v / 1024).toFixed(1)} KiB`;
  if (v < 1024 ** 3) return `${(v / 1024 ** 2).toFixed(1)} MiB`;
  return `${(v / 1024 ** 3).toFixed(2)} GiB`;
}

// The estimated seconds left: the job's own estimate when it has one, else a linear one.
export function etaOf(job) {
  if (TERMINAL.has(job.state)) return null;
  if (job.etaSeconds !== undefined) return Number(job.etaSeconds);
  const started = seconds(job.startedAt);
  const p = Number(job.percentage) || 0;
  if (!started || p <= 0 || p >= 100) return null;
  const elapsed = Date.now() / 1000 - started;
  return (elapsed * (100 - p)) / p;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function bar(value, { label = "", cls = "" } = {}) {
  const p = Math.max(0, Math.min(100, Number(value) || 0));
  const fill = el("div", { class: "fill", style: `width:${p}%` });
  const text = el("span", { class: "bar-text", text: label || pct(p) });
  return el("div", { class: `bar ${cls}`, role: "progressbar", "aria-valuenow": p.toFixed(1), "aria-valuemin": "0", "aria-valuemax": "100" }, fill, text);
}

export function setBar(node, value, label) {
  const p = Math.max(0, Math.min(100, Number(value) || 0));
  node.querySelector(".fill").style.width = `${p}%`;
  node.querySelector(".bar-text").textContent = label || pct(p);
  node.setAttribute("aria-valuenow", p.toFixed(1));
}

export function stateBadge(state) {
  const s = shortState(state);
  return el("span", { class: `badge state-${s.toLowerCase()}`, text: s });
}

export function table(headers, rows, { cls = "" } = {}) {
  return el(
    "table",
    { class: cls },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows),
  );
}

export function keyValues(map, { digits = 4 } = {}) {
  const entries = Object.entries(map || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return el("p", { class: "muted", text: "none" });
  return table(
    ["name", "value"],
    entries.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { class: "num", text: num(v, digits) }))),
    { cls: "kv" },
  );
}
