// The jobs table: every job, newest first, polled and patched in place (a row is rebuilt only
// when its job changed), so a thousand rows stay cheap.

import { getJson } from "./api.js";
import { age, bar, duration, el, etaOf, pct, setBar, shortKind, shortState, TERMINAL } from "./format.js";

const POLL_ACTIVE_MS = 1000;
const POLL_IDLE_MS = 4000;
const MAX_JOBS = 5000;
const FULL_MS = 15000;
const STATES = ["", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
const LIVE = ["QUEUED", "RUNNING"];

export function mountJobs(root, ctx) {
  const filter = el(
    "select",
    { id: "state-filter", "aria-label": "Filter by state", onchange: () => { rows.clear(); body.replaceChildren(); lastFull = 0; refresh(); } },
    STATES.map((s) => el("option", { value: s, text: s ? s.toLowerCase() : "all states" })),
  );
  filter.value = ctx.query.get("state") || "";
  const summary = el("span", { class: "muted", id: "jobs-summary" });
  const body = el("tbody");
  const headers = ["kind", "job", "state", "progress", "step", "ETA", "node", "device", "age"];
  const tableNode = el(
    "table",
    { class: "jobs", id: "jobs-table" },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: `col-${h.toLowerCase()}`, text: h })))),
    body,
  );
  const error = el("p", { class: "error", hidden: true });
  root.replaceChildren(
    el("div", { class: "toolbar" }, el("h2", { text: "Jobs" }), filter, summary),
    error,
    el("div", { class: "scroll" }, tableNode),
  );

  const rows = new Map();
  let timer = null;
  let stopped = false;
  let lastFull = 0;

  async function fetchAll(states) {
    const jobs = [];
    let token = "";
    do {
      const page = await getJson("jobs", { state: states, page_size: 1000, page_token: token, view: "summary" });
      jobs.push(...(page.jobs || []));
      token = page.nextPageToken || "";
    } while (token && jobs.length < MAX_JOBS);
    return jobs;
  }

  // Only unfinished jobs change, so the fast poll asks for those alone; the whole list is
  // read again when one of them finishes, a new one appears, or every FULL_MS.
  async function refresh() {
    clearTimeout(timer);
    let active = false;
    try {
      const chosen = filter.value;
      const live = LIVE.filter((s) => !chosen || s === chosen);
      let full = !live.length || Date.now() - lastFull > FULL_MS || !rows.size;
      if (!full) {
        const jobs = await fetchAll(live);
        const ids = new Set(jobs.map((j) => j.jobId));
        const finished = [...rows.values()].some((row) => LIVE.includes(row.tr.dataset.state) && !ids.has(row.tr.dataset.jobId));
        if (finished || jobs.some((j) => !rows.has(j.jobId))) full = true;
        else {
          for (const job of jobs) updateRow(rows.get(job.jobId), job);
          for (const row of rows.values()) if (!LIVE.includes(row.tr.dataset.state)) row.cells.age.textContent = age(row.createdAt);
          active = jobs.length > 0;
        }
      }
      if (full) {
        const jobs = await fetchAll(chosen);
        lastFull = Date.now();
        if (stopped) return;
        active = render(jobs);
      }
      if (stopped) return;
      error.hidden = true;
    } catch (e) {
      if (stopped) return;
      if (ctx.onApiError(e)) return;
      error.hidden = false;
      error.textContent = `Could not list jobs: ${e.message}`;
    }
    if (!stopped) timer = setTimeout(refresh, active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
  }

  function render(jobs) {
    let active = false;
    const seen = new Set();
    let order = [];
    for (const job of jobs) {
      seen.add(job.jobId);
      if (!TERMINAL.has(job.state)) active = true;
      let row = rows.get(job.jobId);
      if (!row) {
        row = makeRow(job);
        rows.set(job.jobId, row);
      }
      updateRow(row, job);
      order.push(row.tr);
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    // Re-order only when the order changed (new jobs arrive at the top).
    const current = body.children;
    let same = current.length === order.length;
    for (let i = 0; same && i < order.length; i++) same = current[i] === order[i];
    if (!same) body.replaceChildren(...order);
    const counts = {};
    for (const job of jobs) counts[shortState(job.state)] = (counts[shortState(job.state)] || 0) + 1;
    summary.textContent = `${jobs.length} jobs` + Object.entries(counts).map(([s, n]) => ` · ${n} ${s.toLowerCase()}`).join("");
    body.dataset.count = String(jobs.length);
    return active;
  }

  function makeRow(job) {
    const cells = {};
    const tr = el("tr", { class: "job-row", tabindex: "0", dataset: { jobId: job.jobId } });
    for (const h of headers) {
      cells[h.toLowerCase()] = el("td", { class: `col-${h.toLowerCase()}` });
      tr.append(cells[h.toLowerCase()]);
    }
    cells.job.append(el("a", { href: `#/jobs/${job.jobId}`, text: job.jobId }));
    cells.progress.append(bar(0));
    const open = () => ctx.navigate(`#/jobs/${job.jobId}`);
    tr.addEventListener("click", (event) => { if (event.target.tagName !== "A") open(); });
    tr.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    return { tr, cells, key: "", createdAt: job.createdAt };
  }

  function updateRow(row, job) {
    const { cells, tr } = row;
    const key = `${job.state}|${job.lastSeq}|${job.node || ""}`;
    if (key !== row.key) {
      row.key = key;
      tr.dataset.state = shortState(job.state);
      tr.dataset.percentage = String(job.percentage || 0);
      cells.kind.textContent = shortKind(job.kind, job);
      cells.state.replaceChildren(el("span", { class: `badge state-${shortState(job.state).toLowerCase()}`, text: shortState(job.state) }));
      setBar(cells.progress.firstChild, job.percentage || 0, pct(job.percentage || 0));
      const step = job.stepName ? `${job.stepIndex || "?"}/${job.stepTotal || "?"} ${job.stepName}` : job.message || "";
      cells.step.textContent = step;
      cells.step.title = job.message || "";
      cells.node.textContent = job.node || "—";
      cells.device.textContent = job.device || ctx.deviceOf(job.node) || "—";
    }
    cells.eta.textContent = duration(etaOf(job));
    cells.age.textContent = age(job.createdAt);
  }

  refresh();
  return {
    unmount() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
