// One job, live: overall bar and ETA, the step breadcrumb, epoch and batch bars with loss and
// accuracy curves (training), the optimizer dashboard (optimization), candle progress
// (backtests and trials), the message log, the result or error, and Cancel.
//
// Events change a plain state object; the DOM is redrawn from it at most once per animation
// frame, so a job sending a hundred events a second costs one redraw per frame. The state is
// kept in sessionStorage too: a reload picks it up and resumes the stream after its last seq.

import { followEvents, getJson, postJson } from "./api.js";
import { chart } from "./charts.js";
import { renderResult } from "./result.js";
import { bar, duration, el, etaOf, keyValues, num, pct, setBar, shortKind, shortState, stateBadge, TERMINAL, clock } from "./format.js";

const LOG_MAX = 500;
const SAVE_MS = 1000;

function fresh(jobId) {
  return {
    jobId, lastSeq: 0, state: "", percentage: 0, eta: null, message: "", node: "", device: "",
    kind: "", steps: {}, stepIndex: 0, stepTotal: 0, stepPercentage: 0,
    epoch: 0, totalEpochs: 0, batch: 0, totalBatches: 0, epochs: [],
    optimizer: null, trials: [], candles: null, stage: "", log: [],
    result: null, error: null, backtestResult: null, optimizeResult: null, duplicates: 0,
  };
}

function storageKey(jobId) {
  return `trainwire.job.${jobId}`;
}

function restore(jobId) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(storageKey(jobId)) || "null");
    return saved && saved.jobId === jobId ? saved : null;
  } catch {
    return null;
  }
}

export function apply(s, e) {
  const seq = Number(e.seq);
  if (seq <= s.lastSeq) {
    s.duplicates += 1;
    return;
  }
  s.lastSeq = seq;
  s.state = e.state || s.state;
  s.percentage = Math.max(s.percentage, Number(e.percentage) || 0);
  s.eta = e.etaSeconds !== undefined ? Number(e.etaSeconds) : s.eta;
  s.node = e.node || s.node;
  s.device = e.device || s.device;
  const kind = e.kind || "";
  if (e.stepIndex) {
    s.stepIndex = e.stepIndex;
    s.stepTotal = e.stepTotal || s.stepTotal;
    s.stepPercentage = Number(e.stepPercentage) || 0;
    if (e.stepName) s.steps[e.stepIndex] = e.stepName;
  }
  if (e.totalEpochs) {
    s.epoch = e.epoch || 0;
    s.totalEpochs = e.totalEpochs;
  }
  if (e.totalBatches) {
    s.batch = e.batch || 0;
    s.totalBatches = e.totalBatches;
  }
  if (kind === "EVENT_KIND_EPOCH" && e.metrics) {
    const point = { epoch: e.epoch || s.epochs.length + 1, ...e.metrics };
    const last = s.epochs[s.epochs.length - 1];
    if (last && last.epoch === point.epoch) s.epochs[s.epochs.length - 1] = point;
    else s.epochs.push(point);
  }
  if (e.optimizer) {
    s.optimizer = e.optimizer;
    const it = e.optimizer.iteration || 0;
    const last = s.trials[s.trials.length - 1];
    if (it && (!last || last[0] !== it)) s.trials.push([it, Number(e.optimizer.currentScore ?? 0), Number(e.optimizer.bestScore ?? 0)]);
  }
  if (e.items && e.items.name === "candles") s.candles = { current: Number(e.items.current || 0), total: Number(e.items.total || 0) };
  if (e.stage) s.stage = e.stage;
  if (e.message) {
    s.message = e.message;
    const last = s.log[s.log.length - 1];
    if (kind !== "EVENT_KIND_BATCH" && !(last && last[1] === e.message)) {
      s.log.push([e.time || "", e.message, kind.replace("EVENT_KIND_", "").toLowerCase(), seq]);
      if (s.log.length > LOG_MAX) s.log.splice(0, s.log.length - LOG_MAX);
    }
  }
  if (e.result) s.result = e.result;
  if (e.error) s.error = e.error;
  if (e.backtestResult) s.backtestResult = e.backtestResult;
  if (e.optimizeResult) s.optimizeResult = e.optimizeResult;
}

export function mountJob(root, ctx, jobId) {
  const saved = restore(jobId);
  const s = saved || fresh(jobId);
  const resumedFrom = saved ? saved.lastSeq : 0;
  let applied = 0;
  let stream = null;
  let frame = 0;
  let saveTimer = 0;
  let drawn = { epochs: -1, trials: -1, log: -1, logSeq: -1, steps: "", result: false };

  const v = {
    title: el("h2", { text: `Job ${jobId}` }),
    kind: el("span", { class: "badge kind" }),
    state: el("span"),
    where: el("span", { class: "muted", id: "job-where" }),
    cancel: el("button", { id: "cancel", class: "danger", type: "button", text: "Cancel", onclick: cancel }),
    connection: el("span", { class: "muted", id: "connection" }),
    overall: bar(0, { cls: "overall" }),
    eta: el("span", { id: "eta" }),
    message: el("p", { id: "job-message", class: "message" }),
    crumbs: el("ol", { class: "breadcrumb", id: "steps" }),
    training: el("section", { class: "card", id: "training", hidden: true }),
    epochBar: bar(0),
    batchBar: bar(0),
    lossChart: el("div", { class: "chart-box", id: "loss-chart" }),
    accChart: el("div", { class: "chart-box", id: "accuracy-chart" }),
    optimizer: el("section", { class: "card", id: "optimizer", hidden: true }),
    iteration: el("span", { id: "iteration" }),
    best: el("span", { id: "best-score" }),
    current: el("span", { id: "current-score" }),
    params: el("div", { id: "best-params" }),
    trialsChart: el("div", { class: "chart-box", id: "trials-chart" }),
    candles: el("section", { class: "card", id: "candles", hidden: true }),
    candleBar: bar(0),
    stage: el("span", { id: "stage", class: "muted" }),
    log: el("div", { class: "log", id: "log", role: "log", "aria-live": "polite" }),
    result: el("section", { class: "card", id: "result", hidden: true }),
    notice: el("p", { class: "error", id: "job-error", hidden: true }),
  };
  v.training.append(
    el("h3", { text: "Training" }),
    el("div", { class: "labelled" }, el("span", { text: "epoch" }), v.epochBar),
    el("div", { class: "labelled" }, el("span", { text: "batch" }), v.batchBar),
    el("div", { class: "charts" }, v.lossChart, v.accChart),
  );
  v.optimizer.append(
    el("h3", { text: "Optimizer" }),
    el("div", { class: "stats" },
      el("div", {}, el("span", { class: "muted", text: "trial " }), v.iteration),
      el("div", {}, el("span", { class: "muted", text: "best " }), v.best),
      el("div", {}, el("span", { class: "muted", text: "current " }), v.current)),
    el("div", { class: "charts" }, v.trialsChart, el("div", {}, el("h4", { text: "Best parameters" }), v.params)),
  );
  v.candles.append(el("h3", { text: "Candles" }), el("div", { class: "labelled" }, v.stage, v.candleBar));
  root.replaceChildren(
    el("p", {}, el("a", { href: "#/jobs", text: "← all jobs" })),
    el("div", { class: "job-head" }, v.title, v.kind, v.state, v.cancel),
    el("p", { class: "where" }, v.where, v.connection),
    v.notice,
    el("section", { class: "card", id: "overall" }, v.overall, el("p", { class: "eta-line" }, "ETA ", v.eta), v.message, v.crumbs),
    v.candles,
    v.training,
    v.optimizer,
    v.result,
    el("section", { class: "card" }, el("h3", { text: "Messages" }), v.log),
  );
  const dataset = root.dataset;
  dataset.jobId = jobId;
  dataset.resumedFrom = String(resumedFrom);

  async function cancel() {
    v.cancel.disabled = true;
    try {
      const job = await postJson(`jobs/${encodeURIComponent(jobId)}/cancel`, { reason: "cancelled from the dashboard" });
      v.notice.hidden = true;
      if (TERMINAL.has(job.state) && !TERMINAL.has(s.state)) s.state = job.state;
      schedule();
    } catch (e) {
      if (ctx.onApiError(e)) return;
      v.notice.hidden = false;
      v.notice.textContent = `Cancel failed: ${e.message}`;
      v.cancel.disabled = false;
    }
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
    if (!saveTimer) saveTimer = setTimeout(save, SAVE_MS);
  }

  function save() {
    saveTimer = 0;
    try {
      sessionStorage.setItem(storageKey(jobId), JSON.stringify(s));
    } catch {
      // storage full or disabled: a reload replays the stream instead
    }
  }

  function draw() {
    frame = 0;
    const terminal = TERMINAL.has(s.state);
    dataset.state = shortState(s.state);
    dataset.lastSeq = String(s.lastSeq);
    dataset.percentage = String(s.percentage);
    dataset.applied = String(applied);
    dataset.duplicates = String(s.duplicates);
    v.kind.textContent = shortKind(s.kind);
    v.state.replaceChildren(stateBadge(s.state));
    const device = s.device || ctx.deviceOf(s.node);
    v.where.textContent = [s.node && `node ${s.node}`, device && `device ${device}`].filter(Boolean).join(" · ");
    v.cancel.disabled = terminal;
    v.cancel.hidden = terminal;
    setBar(v.overall, s.percentage, pct(s.percentage));
    v.eta.textContent = terminal ? "done" : duration(s.eta ?? etaOf({ state: s.state, percentage: s.percentage }));
    v.message.textContent = s.message;
    drawSteps();
    drawTraining();
    drawOptimizer();
    drawLog();
    if (terminal && !drawn.result) {
      drawn.result = true;
      v.result.hidden = false;
      v.result.replaceChildren(...renderResult(s, jobId, ctx));
    }
  }

  function drawSteps() {
    const key = `${s.stepIndex}/${s.stepTotal}/${Object.keys(s.steps).length}/${TERMINAL.has(s.state)}`;
    if (key === drawn.steps) return;
    drawn.steps = key;
    const total = Math.max(s.stepTotal, ...Object.keys(s.steps).map(Number), 0);
    const items = [];
    for (let i = 1; i <= total; i++) {
      const done = i < s.stepIndex || s.state === "JOB_STATE_SUCCEEDED";
      const current = i === s.stepIndex && !TERMINAL.has(s.state);
      items.push(el("li", { class: done ? "done" : current ? "current" : "todo", text: `${done ? "✓ " : ""}${s.steps[i] || `step ${i}`}` }));
    }
    v.crumbs.replaceChildren(...items);
  }

  function drawTraining() {
    if (!s.totalEpochs && !s.epochs.length) return;
    v.training.hidden = false;
    setBar(v.epochBar, s.totalEpochs ? (100 * s.epoch) / s.totalEpochs : 0, `${s.epoch}/${s.totalEpochs}`);
    setBar(v.batchBar, s.totalBatches ? (100 * s.batch) / s.totalBatches : 0, `${s.batch}/${s.totalBatches}`);
    if (drawn.epochs === s.epochs.length) return;
    drawn.epochs = s.epochs.length;
    const series = (key, name, cls) => ({ name, cls, points: s.epochs.filter((p) => p[key] !== undefined).map((p) => [p.epoch, Number(p[key])]) });
    v.lossChart.replaceChildren(el("h4", { text: "Loss" }), chart([series("loss", "train", "train"), series("val_loss", "validation", "validation")], { title: "loss per epoch", xLabel: "epoch" }));
    v.accChart.replaceChildren(el("h4", { text: "Accuracy" }), chart([series("accuracy", "train", "train"), series("val_accuracy", "validation", "validation")], { title: "accuracy per epoch", xLabel: "epoch" }));
    dataset.epochPoints = String(s.epochs.length);
  }

  function drawOptimizer() {
    if (s.candles) {
      v.candles.hidden = false;
      const { current, total } = s.candles;
      setBar(v.candleBar, total ? (100 * current) / total : 0, `${current.toLocaleString()}/${total.toLocaleString()}`);
      v.stage.textContent = s.stage || "";
    }
    const o = s.optimizer;
    if (!o) return;
    v.optimizer.hidden = false;
    v.iteration.textContent = `${o.iteration || 0}/${o.totalIterations || "?"}`;
    dataset.iteration = String(o.iteration || 0);
    v.best.textContent = `${num(o.bestScore ?? 0)}${o.objective ? ` (${o.objective})` : ""}`;
    v.current.textContent = num(o.currentScore ?? 0);
    if (drawn.trials === s.trials.length) return;
    drawn.trials = s.trials.length;
    v.params.replaceChildren(keyValues(o.bestParams));
    v.trialsChart.replaceChildren(
      el("h4", { text: "Score per trial" }),
      chart(
        [
          { name: "trial", cls: "validation", dots: true, points: s.trials.map(([i, c]) => [i, c]) },
          { name: "best so far", cls: "train", points: s.trials.map(([i, , b]) => [i, b]) },
        ],
        { title: "score per trial", xLabel: "trial" },
      ),
    );
  }

  function drawLog() {
    const last = s.log[s.log.length - 1];
    const lastSeq = last ? last[3] : 0;
    if (lastSeq === drawn.logSeq) return;
    const atBottom = v.log.scrollHeight - v.log.scrollTop - v.log.clientHeight < 24;
    const fresh = s.log.filter((line) => line[3] > drawn.logSeq);
    drawn.logSeq = lastSeq;
    for (const [time, message, kind] of fresh) {
      v.log.append(el("div", { class: `line kind-${kind}` }, el("time", { text: clock(time) }), " ", message));
    }
    while (v.log.childElementCount > LOG_MAX) v.log.firstChild.remove();
    if (atBottom) v.log.scrollTop = v.log.scrollHeight;
  }

  async function start() {
    try {
      const job = await getJson(`jobs/${encodeURIComponent(jobId)}`);
      s.kind = job.kind || (job.optimize ? "JOB_KIND_OPTIMIZE" : job.backtest ? "JOB_KIND_BACKTEST" : "JOB_KIND_TRAIN");
      if (!s.lastSeq) {
        s.node = job.node || "";
        s.device = job.device || "";
      }
      schedule();
    } catch (e) {
      if (ctx.onApiError(e)) return;
      v.notice.hidden = false;
      v.notice.textContent = e.message;
      return;
    }
    stream = followEvents(jobId, s.lastSeq, {
      onEvent(event) {
        applied += 1;
        apply(s, event);
        schedule();
      },
      onStatus(text, { reconnects }) {
        v.connection.textContent = text;
        dataset.reconnects = String(reconnects);
      },
      onEnd(error) {
        if (error && !ctx.onApiError(error)) {
          v.notice.hidden = false;
          v.notice.textContent = error.message;
        }
        schedule();
      },
    });
  }

  addEventListener("pagehide", save);
  draw();
  start();
  return {
    unmount() {
      if (stream) stream.close();
      removeEventListener("pagehide", save);
      cancelAnimationFrame(frame);
      clearTimeout(saveTimer);
      save();
    },
  };
}
