// The dashboard: a hash router over the views, the token prompt, and the node list the jobs
// table uses to name each job's device.

import { getJson, setToken, token } from "./api.js";
import { deviceName, mountConfigurations, mountModels, mountNodes } from "./catalog.js";
import { mountJob } from "./job.js";
import { mountJobs } from "./jobs.js";

const main = document.getElementById("main");
const tokenForm = document.getElementById("token-form");
const nodes = new Map();
let view = null;

const ctx = {
  query: new URLSearchParams(),
  navigate(hash) {
    location.hash = hash;
  },
  deviceOf(address) {
    return address ? deviceName(nodes.get(address)) : "";
  },
  // True when the error was handled here (the token is missing or wrong).
  onApiError(error) {
    if (error && error.status === 401) {
      askToken(token() ? "That token was refused; enter the orchestrator's token." : "This orchestrator needs a token.");
      return true;
    }
    return false;
  },
};

function askToken(message) {
  document.getElementById("token-message").textContent = message;
  tokenForm.hidden = false;
  document.getElementById("token").focus();
}

tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(document.getElementById("token").value.trim());
  tokenForm.hidden = true;
  route();
});

async function refreshNodes() {
  try {
    const reply = await getJson("nodes");
    nodes.clear();
    for (const n of reply.nodes || []) nodes.set(n.address, n);
  } catch {
    // the nodes view reports errors; here a device column just stays empty
  }
}

function route() {
  if (view) view.unmount();
  const [path, query] = (location.hash.replace(/^#/, "") || "/jobs").split("?");
  ctx.query = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === (parts[0] || "jobs"));
  }
  main.dataset.view = parts[0] === "jobs" && parts[1] ? "job" : parts[0] || "jobs";
  if (parts[0] === "jobs" && parts[1]) view = mountJob(main, ctx, decodeURIComponent(parts[1]));
  else if (parts[0] === "nodes") view = mountNodes(main, ctx);
  else if (parts[0] === "models") view = mountModels(main, ctx);
  else if (parts[0] === "configurations") view = mountConfigurations(main, ctx);
  else view = mountJobs(main, ctx);
}

addEventListener("hashchange", route);
refreshNodes();
setInterval(refreshNodes, 10_000);
route();
