// The HTTP API client: JSON calls with the bearer token, downloads, and a job's event stream.
//
// Events come over Server-Sent Events read with fetch() rather than EventSource, because
// EventSource cannot send an Authorization header. The reader follows the same rules
// EventSource does: `id:` is the event's seq, a dropped stream is resumed with Last-Event-ID
// after `retry:` milliseconds, and 204 No Content means there is nothing more.

import { TERMINAL } from "./format.js";

const TOKEN_KEY = "trainwire.token";

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "";
    this.field = (body && body.field) || "";
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new ApiError(response.status, body);
}

export async function getJson(path, params) {
  const url = new URL(`/api/v1/${path}`, location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    for (const v of [].concat(value)) if (v !== undefined && v !== "") url.searchParams.append(key, v);
  }
  const response = await fetch(url, { headers: headers(), cache: "no-store" });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function postJson(path, body) {
  const response = await fetch(`/api/v1/${path}`, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body || {}),
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

// Save a file the API serves (the token rules out a plain link).
export async function download(path, fallbackName) {
  const response = await fetch(`/api/v1/${path}`, { headers: headers() });
  if (!response.ok) throw await failure(response);
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// Follow a job's events after `afterSeq` until the terminal one, reconnecting as EventSource
// would. `onEvent(event)` gets each ProgressEvent (proto JSON) once, in seq order;
// `onStatus(text)` hears about connection changes. Returns { close() }.
export function followEvents(jobId, afterSeq, { onEvent, onStatus, onEnd }) {
  let lastSeq = afterSeq;
  let retryMs = 2000;
  let closed = false;
  let controller = null;
  let reconnects = 0;

  async function connect() {
    while (!closed) {
      controller = new AbortController();
      const h = headers({ Accept: "text/event-stream" });
      if (lastSeq > 0) h["Last-Event-ID"] = String(lastSeq);
      let ended = false;
      try {
        const response = await fetch(`/api/v1/jobs/${encodeURIComponent(jobId)}/events`, {
          headers: h,
          signal: controller.signal,
          cache: "no-store",
        });
        if (response.status === 204) {
          ended = true;
        } else if (!response.ok) {
          const error = await failure(response);
          if (response.status >= 400 && response.status < 500) {
            onStatus(`stopped: ${error.message}`, { reconnects, error });
            onEnd && onEnd(error);
            return;
          }
          throw error;
        } else {
          onStatus("live", { reconnects });
          ended = await read(response.body);
        }
      } catch (error) {
        if (closed) return;
        onStatus(`reconnecting after seq ${lastSeq}: ${error.message || error}`, { reconnects });
      }
      if (ended) {
        onStatus("finished", { reconnects });
        onEnd && onEnd(null);
        return;
      }
      if (closed) return;
      reconnects += 1;
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }

  // Parse the stream; true once the terminal event has been seen.
  async function read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let frame = { data: [], id: null, event: "message" };
    let terminal = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return terminal;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (frame.data.length) terminal = dispatch(frame) || terminal;
          frame = { data: [], id: null, event: "message" };
          continue;
        }
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") frame.data.push(text);
        else if (field === "id") frame.id = text;
        else if (field === "event") frame.event = text;
        else if (field === "retry" && /^\d+$/.test(text)) retryMs = Number(text);
      }
    }
  }

  function dispatch(frame) {
    const data = JSON.parse(frame.data.join("\n"));
    if (frame.event === "interrupted") {
      onStatus(`orchestrator stopping; resuming after seq ${lastSeq}`, { reconnects });
      return false;
    }
    const seq = Number(data.seq || frame.id || 0);
    if (seq <= lastSeq) return false; // never twice
    lastSeq = seq;
    onEvent(data);
    return TERMINAL.has(data.state);
  }

  connect();
  return {
    close() {
      closed = true;
      if (controller) controller.abort();
    },
    get lastSeq() {
      return lastSeq;
    },
    get reconnects() {
      return reconnects;
    },
  };
}
