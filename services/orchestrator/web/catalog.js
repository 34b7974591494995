// Nodes (health, device, slots, latency), models and configurations (metrics, data, download).

import { download, getJson } from "./api.js";
import { age, bytes, el, keyValues, num, table } from "./format.js";

const NODES_POLL_MS = 3000;

function health(value) {
  const h = (value || "NODE_HEALTH_UNSPECIFIED").replace("NODE_HEALTH_", "");
  return el("span", { class: `badge health-${h.toLowerCase()}`, text: h.replace("_", " ").toLowerCase() });
}

export function deviceName(node) {
  const d = node && node.device;
  if (!d) return "";
  return [d.torchDevice, d.name].filter(Boolean).join(" · ");
}

function failed(root, ctx, what, e) {
  if (ctx.onApiError(e)) return;
  root.replaceChildren(el("p", { class: e.status === 501 ? "muted" : "error", text: `${what}: ${e.message}` }));
}

export function mountNodes(root, ctx) {
  let timer = 0;
  let stopped = false;
  const body = el("div", { class: "scroll" });
  root.replaceChildren(el("div", { class: "toolbar" }, el("h2", { text: "Nodes" })), body);
  async function refresh() {
    try {
      const reply = await getJson("nodes");
      if (stopped) return;
      const rows = (reply.nodes || []).map((n) =>
        el(
          "tr",
          { class: "node-row", dataset: { address: n.address } },
          el("td", { text: n.address }),
          el("td", {}, health(n.health)),
          el("td", { text: deviceName(n) || "—" }),
          el("td", { class: "num", text: `${n.slotsUsed || 0}/${n.slots || 0}` }),
          el("td", { class: "num", text: n.latencyMs !== undefined ? `${num(n.latencyMs, 3)} ms` : "—" }),
          el("td", { text: age(n.lastCheck) }),
          el("td", { text: n.source || "" }),
          el("td", { class: "muted", text: n.detail || "" }),
        ),
      );
      body.replaceChildren(
        rows.length
          ? table(["address", "health", "device", "slots", "latency", "checked", "source", "detail"], rows, { cls: "nodes" })
          : el("p", { class: "muted", text: "No trainer nodes yet: start one with --orchestrator, or give the orchestrator --node." }),
      );
    } catch (e) {
      if (stopped) return;
      failed(body, ctx, "Could not list nodes", e);
    }
    if (!stopped) timer = setTimeout(refresh, NODES_POLL_MS);
  }
  refresh();
  return { unmount() { stopped = true; clearTimeout(timer); } };
}

function dataSource(ref) {
  const d = ref.data;
  if (!d) return "—";
  return [d.source, d.location].filter(Boolean).join(": ");
}

export function mountModels(root, ctx) {
  const body = el("div");
  root.replaceChildren(el("div", { class: "toolbar" }, el("h2", { text: "Models" })), body);
  listed(body, ctx, "models", "models", (m) => [
    el("td", {}, el("code", { text: m.name })),
    el("td", { text: (m.symbols || []).join(" ") + " " + (m.timeframes || []).join(" ") }),
    el("td", { class: "num", text: m.assessment ? num(m.assessment.accuracy ?? 0, 3) : "—" }),
    el("td", { class: "muted", text: m.assessment ? m.assessment.verdict || "" : "" }),
    el("td", { text: dataSource(m) }),
    el("td", { class: "num", text: bytes(m.sizeBytes) }),
    el("td", { text: age(m.createdAt) }),
  ], ["name", "data", "accuracy", "verdict", "source", "size", "age"], async (m) => {
    const model = await getJson(`models/${m.name}`);
    return [
      el("div", { class: "charts" },
        el("div", {}, el("h4", { text: "Test metrics" }), keyValues(model.testMetrics)),
        el("div", {}, el("h4", { text: "Training metrics" }), keyValues(model.trainingMetrics))),
      el("p", { class: "muted", text: `${(model.featureNames || []).length} features · sha256 ${m.sha256}` }),
    ];
  }, ".safetensors");
  return { unmount() {} };
}

export function mountConfigurations(root, ctx) {
  const body = el("div");
  root.replaceChildren(el("div", { class: "toolbar" }, el("h2", { text: "Configurations" })), body);
  listed(body, ctx, "configurations", "configurations", (c) => [
    el("td", {}, el("code", { text: c.name })),
    el("td", { text: Object.entries(c.params || {}).map(([k, v]) => `${k}=${v}`).join(" ") }),
    el("td", { text: c.objective || "" }),
    el("td", { class: "num", text: num(c.inSampleScore ?? 0) }),
    el("td", { class: "num", text: num(c.outOfSampleScore ?? 0) }),
    el("td", { text: age(c.createdAt) }),
  ], ["name", "parameters", "objective", "in sample", "out of sample", "age"], async (c) => {
    const conf = await getJson(`configurations/${c.name}`);
    let doc = {};
    try { doc = JSON.parse(conf.configurationJson || "{}"); } catch { doc = {}; }
    return [el("pre", { class: "json", text: JSON.stringify(doc, null, 2) })];
  }, ".json");
  return { unmount() {} };
}

// A list with a details row per item and a download button.
async function listed(body, ctx, path, key, cells, headers, details, suffix) {
  let items = [];
  try {
    let token = "";
    do {
      const page = await getJson(path, { page_size: 500, page_token: token });
      items.push(...(page[key] || []));
      token = page.nextPageToken || "";
    } while (token && items.length < 5000);
  } catch (e) {
    failed(body, ctx, `Could not list ${path}`, e);
    return;
  }
  if (!items.length) {
    body.replaceChildren(el("p", { class: "muted", text: `No ${path} stored yet.` }));
    return;
  }
  const rows = [];
  for (const item of items) {
    const extra = el("tr", { class: "details", hidden: true }, el("td", { colspan: String(headers.length + 1) }));
    const leaf = item.name.split("/").pop();
    const button = el("button", {
      type: "button",
      class: "download",
      text: "Download",
      async onclick(event) {
        event.stopPropagation();
        try { await download(`${path}/${item.name}/download`, `${leaf}${suffix}`); } catch (e) { if (!ctx.onApiError(e)) alert(e.message); }
      },
    });
    const row = el("tr", { class: "item-row", tabindex: "0", dataset: { name: item.name } }, cells(item), el("td", {}, button));
    row.addEventListener("click", async () => {
      extra.hidden = !extra.hidden;
      if (!extra.hidden && !extra.firstChild.childElementCount) {
        try { extra.firstChild.replaceChildren(...(await details(item))); } catch (e) { extra.firstChild.textContent = e.message; }
      }
    });
    rows.push(row, extra);
  }
  body.replaceChildren(el("div", { class: "scroll" }, table([...headers, ""], rows, { cls: path })));
}
