// What a finished job produced: the model (training), stats (backtest), best configuration
// and trials (optimization), or the error.

import { download } from "./api.js";
import { bytes, el, keyValues, num, table } from "./format.js";

function downloadButton(path, name, ctx) {
  return el("button", {
    type: "button",
    class: "download",
    text: "Download",
    async onclick() {
      try {
        await download(path, name);
      } catch (e) {
        if (!ctx.onApiError(e)) alert(`Download failed: ${e.message}`);
      }
    },
  });
}

export function renderResult(s, jobId, ctx) {
  const out = [el("h3", { text: s.error ? "Error" : "Result" })];
  if (s.error) {
    out.push(
      el("p", { class: "error", id: "error-message" }, el("strong", { text: s.error.code || "ERROR" }), ": ", s.error.message || ""),
    );
    if (s.error.where) out.push(el("p", { class: "muted", text: `where: ${s.error.where}` }));
  }
  const r = s.result;
  if (r && r.model) {
    const m = r.model;
    out.push(
      el("p", { id: "model-name" }, "Model ", el("code", { text: m.name }), ` · ${bytes(m.sizeBytes)} · sha256 `, el("code", { class: "hash", text: (m.sha256 || "").slice(0, 16) }), " ", downloadButton(`models/${m.name}/download`, "model.safetensors", ctx)),
    );
    const assessment = r.assessment || m.assessment;
    if (assessment && assessment.verdict) out.push(el("p", { class: "verdict", text: assessment.verdict }));
    out.push(el("div", { class: "charts" }, el("div", {}, el("h4", { text: "Test metrics" }), keyValues(r.testMetrics)), el("div", {}, el("h4", { text: "Training metrics" }), keyValues(r.trainingMetrics))));
    if (r.backtest) out.push(el("h4", { text: "Backtest of the model's signals" }), keyValues(r.backtest.stats));
  }
  const b = s.backtestResult;
  if (b) {
    out.push(el("p", {}, `${b.strategy || b.model || ""} on ${b.symbol || ""} ${b.timeframe || ""} · ${b.tradesTotal || 0} trades`));
    out.push(keyValues(b.stats));
  }
  const o = s.optimizeResult;
  if (o) {
    out.push(el("p", { id: "best-result" }, `Best ${num(o.bestScore ?? 0)} (${o.sampler || "sampler"}), strategy ${o.strategy || ""}${o.overfit ? " · looks overfit" : ""}`));
    out.push(el("div", { class: "charts" }, el("div", {}, el("h4", { text: "Best parameters" }), keyValues(o.bestParams)), el("div", {}, el("h4", { text: "In sample" }), keyValues(o.inSample)), el("div", {}, el("h4", { text: "Out of sample" }), keyValues(o.outOfSample))));
    if (o.configuration && o.configuration.name) {
      out.push(el("p", {}, "Configuration ", el("code", { text: o.configuration.name }), " ", downloadButton(`configurations/${o.configuration.name}/download`, "configuration.json", ctx)));
    }
    if (o.trials && o.trials.length) {
      const rows = o.trials.slice(-200).map((t) => el("tr", {}, el("td", { text: String(t.number ?? "") }), el("td", { class: "num", text: num(t.score) }), el("td", { text: t.state || "" }), el("td", { text: Object.entries(t.params || {}).map(([k, v]) => `${k}=${v}`).join(" ") })));
      out.push(el("h4", { text: `Trials (${o.trials.length})` }), el("div", { class: "scroll" }, table(["#", "score", "state", "params"], rows)));
    }
  }
  if (!s.error && !r && !b && !o) out.push(el("p", { class: "muted", text: "No result." }));
  return out;
}
