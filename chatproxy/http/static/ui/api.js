// Talking to the proxy's API, from the same origin, with the key the user saved.

import { state } from "./state.js";

// The API lives where the page does: /ui -> "", /chat-proxy/ui -> "/chat-proxy".
export const API_BASE = location.pathname.replace(/\/ui\/?$/, "");

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || `HTTP ${status}`);
    this.status = status; // 0: the server could not be reached
    this.code = code || "";
    this.retryAfter = retryAfter; // seconds, or null
  }
}

function headers(extra) {
  const all = { ...extra };
  if (state.key) all["X-API-Key"] = state.key;
  return all;
}

async function call(path, init) {
  let response;
  try {
    response = await fetch(API_BASE + path, { ...init, cache: "no-store" });
  } catch (_) {
    throw new ApiError(0, "network", "");
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export function request(method, path, body, extraHeaders) {
  const init = { method, headers: headers(extraHeaders) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  return call(path, init);
}

// POST a file (any Blob) as it is, as `type`.
export function upload(path, file, type) {
  return call(path, { method: "POST", headers: headers({ "Content-Type": type }), body: file });
}

export async function api(method, path, body) {
  const response = await request(method, path, body);
  return response.json();
}

async function errorFrom(response) {
  let body = {};
  try {
    body = await response.json();
  } catch (_) {
    // not JSON (a gateway's page): the status says enough
  }
  const seconds = parseInt(response.headers.get("Retry-After") || "", 10);
  return new ApiError(
    response.status,
    body.code,
    typeof body.error === "string" ? body.error : "",
    Number.isFinite(seconds) ? seconds : null,
  );
}

// The server's chat id rule; a dots-only id is refused too, since a browser folds a path segment
// of dots away ("/../system" would be the global prompt).
export function validChatId(id) {
  return /^[A-Za-z0-9._@:-]{1,128}$/.test(id) && /[^.]/.test(id);
}

export function chatPath(id, rest) {
  if (!validChatId(id)) throw new Error(`not a chat id: ${id}`);
  return `/${encodeURIComponent(id)}/${rest}`;
}

// Yield {event, data} for each server-sent event of a fetch response (EventSource cannot POST).
export async function* serverEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}
