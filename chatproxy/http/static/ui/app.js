// The chat page: talks to the proxy's own API from the same origin; no framework, no build step.
// Every text from a user or the model goes into the page with textContent, never as HTML.
"use strict";

const KEY_STORAGE = "chatproxy.apiKey";
const HISTORY_PAGE = 50;
const CHATS_PAGE = 20;
const TITLE_CHARS = 60;

// The API lives where the page does: /ui -> "", /chat-proxy/ui -> "/chat-proxy".
const API_BASE = location.pathname.replace(/\/ui\/?$/, "");

const $ = (id) => document.getElementById(id);

const state = {
  key: localStorage.getItem(KEY_STORAGE) || "",
  chatId: "",
  isNew: true,
  chats: [], // as GET /chats lists them: {id, title, updated, messages}
  nextBefore: null,
  firstMessageId: null, // the oldest message shown, for paging back
  sending: false,
};

// -- talking to the API -------------------------------------------------------------------------

class ApiError extends Error {
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

async function request(method, path, body, extraHeaders) {
  const init = { method, headers: headers(extraHeaders), cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(API_BASE + path, init);
  } catch (_) {
    throw new ApiError(0, "network", "");
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function api(method, path, body) {
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
function validChatId(id) {
  return /^[A-Za-z0-9._@:-]{1,128}$/.test(id) && /[^.]/.test(id);
}

function chatPath(id, rest) {
  if (!validChatId(id)) throw new Error(`not a chat id: ${id}`);
  return `/${encodeURIComponent(id)}/${rest}`;
}

// Yield {event, data} for each server-sent event of a fetch response (EventSource cannot POST).
async function* serverEvents(response) {
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

// -- errors in plain words ----------------------------------------------------------------------

function waitWords(error) {
  const seconds = error.retryAfter;
  if (seconds === null || seconds === undefined) return "Try again in a moment.";
  if (seconds <= 1) return "Try again in a second.";
  if (seconds <= 90) return `Try again in ${seconds} seconds.`;
  const minutes = Math.ceil(seconds / 60);
  return `Try again in ${minutes} minutes.`;
}

const ERROR_WORDS = {
  network: () => "Could not reach the server. Check your connection and try again.",
  unauthorized: () =>
    state.key
      ? "The server did not accept your API key. Check it under “API key”."
      : "This server needs an API key. Paste yours under “API key”.",
  admin_only: () => "Only an admin key may do this.",
  rate_limited: (e) => `Too many requests: you reached the server's rate limit. ${waitWords(e)}`,
  token_budget_exhausted: (e) => `This key has used its token budget for today. ${waitWords(e)}`,
  chat_busy: () => "This chat is still answering an earlier message. Try again in a moment.",
  turn_lease_lost: () => "The reply took too long and was not saved. Send your message again.",
  payload_too_large: () => "This message is too large for the server. Shorten it and try again.",
  invalid_chat_id: () => "This chat id is not valid. Start a new chat.",
  upstream_error: (e) => `The model provider is unavailable right now. ${waitWords(e)}`,
  upstream_bad_response: () => "The model provider sent an answer the server could not read.",
  upstream_rate_limited: (e) => `The model provider is overloaded right now. ${waitWords(e)}`,
  upstream_timeout: () => "The model provider did not answer in time. Try again in a moment.",
  upstream_auth: () =>
    "The model provider refused the server's own credentials. Tell the server's operator.",
  upstream_rejected: (e) => `The model provider refused this message: ${e.message}`,
  store_unavailable: () => "The chat store is unavailable right now. Try again in a moment.",
  reply_cut: () => "The reply broke off before it was finished and was not saved. Send again.",
};

function describe(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}`;
  const words = ERROR_WORDS[error.code];
  if (words) return words(error);
  const status = error.status;
  if (status === 401) return ERROR_WORDS.unauthorized(error);
  if (status === 413) return ERROR_WORDS.payload_too_large(error);
  if (status === 429) return ERROR_WORDS.rate_limited(error);
  if (status === 502 || status === 503 || status === 504) return ERROR_WORDS.upstream_error(error);
  if (status === 400 || status === 422) return `The server refused this: ${error.message}`;
  if (!status) return `Something went wrong: ${error.message}`;
  return `Something went wrong (HTTP ${status}). ${error.message}`.trim();
}

function showError(error) {
  $("error-text").textContent = typeof error === "string" ? error : describe(error);
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

function setStatus(text) {
  $("status").textContent = text;
}

// -- the chat list ------------------------------------------------------------------------------

function ago(seconds) {
  const diff = Date.now() / 1000 - seconds;
  if (diff < 60) return "just now";
  if (diff < 3600) return `${Math.floor(diff / 60)} min ago`;
  if (diff < 86400) return `${Math.floor(diff / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleDateString();
}

function renderChats() {
  const list = $("chat-list");
  list.replaceChildren(
    ...state.chats.map((chat) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.chatId = chat.id;
      if (chat.id === state.chatId) button.setAttribute("aria-current", "true");
      const title = document.createElement("span");
      title.className = "title";
      title.textContent = chat.title || chat.id;
      const meta = document.createElement("span");
      meta.className = "meta";
      const count = `${chat.messages} message${chat.messages === 1 ? "" : "s"}`;
      meta.textContent = `${count} · ${ago(chat.updated)}`;
      button.append(title, meta);
      item.append(button);
      return item;
    }),
  );
  $("chats-empty").hidden = state.chats.length > 0;
  $("more-chats").hidden = state.nextBefore === null;
}

async function loadChats(more) {
  let path = `/chats?limit=${CHATS_PAGE}`;
  if (more && state.nextBefore !== null) path += `&before=${state.nextBefore}`;
  try {
    const page = await api("GET", path);
    state.chats = more ? state.chats.concat(page.chats) : page.chats;
    state.nextBefore = page.next_before;
    renderChats();
  } catch (error) {
    showError(error);
  }
}

function noteTurn(id, firstText) {
  const now = Date.now() / 1000;
  let chat = state.chats.find((c) => c.id === id);
  if (chat) {
    state.chats = state.chats.filter((c) => c !== chat);
    chat.messages += 2;
    chat.updated = now;
  } else {
    chat = { id, title: firstText.slice(0, TITLE_CHARS), created: now, updated: now, messages: 2 };
  }
  state.chats.unshift(chat);
  renderChats();
}

function setSidebar(open) {
  $("sidebar").classList.toggle("open", open);
  $("toggle-chats").setAttribute("aria-expanded", String(open));
}

// -- one chat -----------------------------------------------------------------------------------

function newChatId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // a version 4 UUID
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function textOf(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((part) => (part && part.type === "text" ? part.text : "[image]"))
    .join("\n");
}

function messageElement(message) {
  const item = document.createElement("li");
  item.className = `message ${message.role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = { user: "You", assistant: "Assistant", system: "System prompt" }[message.role] ||
    message.role;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = textOf(message.content);
  item.append(who, text);
  setMeta(item, message);
  return item;
}

function setMeta(item, message) {
  const parts = [];
  if (message.created_at) {
    const when = new Date(message.created_at * 1000);
    parts.push(when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  }
  if (message.role === "assistant" && message.model) parts.push(message.model);
  if (message.role === "assistant" && message.tokens && message.tokens.total_tokens) {
    parts.push(`${message.tokens.total_tokens} tokens`);
  }
  let meta = item.querySelector(".meta");
  if (!parts.length) return;
  if (!meta) {
    meta = document.createElement("span");
    meta.className = "meta";
    item.append(meta);
  }
  meta.textContent = parts.join(" · ");
}

function updateEmpty() {
  $("empty-chat").hidden = $("messages").children.length > 0;
}

function showChatHeader() {
  const chat = state.chats.find((c) => c.id === state.chatId);
  const name = state.isNew && !chat ? "New chat" : (chat && chat.title) || state.chatId;
  $("chat-name").textContent = name;
  $("chat-name").title = `Chat id: ${state.chatId}`;
  document.title = `${name} · chatproxy`;
}

function showSystem(system) {
  const line = $("chat-system");
  if (!system || !system.content) {
    line.textContent = "";
    return;
  }
  const from = system.source === "chat" ? "System prompt" : "Default system prompt";
  line.textContent = `${from}: ${system.content}`;
}

async function openChat(id, isNew) {
  state.chatId = id;
  state.isNew = isNew;
  state.firstMessageId = null;
  history.replaceState(null, "", `#chat=${encodeURIComponent(id)}`);
  // The composer stays disabled until the first chat is open, so nothing typed goes nowhere.
  $("message").disabled = false;
  $("send").disabled = state.sending;
  $("messages").replaceChildren();
  $("more-messages").hidden = true;
  $("system-form").hidden = true;
  $("edit-system").setAttribute("aria-expanded", "false");
  $("delete-chat").disabled = isNew;
  showSystem(null);
  clearError();
  showChatHeader();
  renderChats();
  updateEmpty();
  if (isNew) return;
  setStatus("Loading the chat…");
  try {
    await loadHistory();
    showSystem(await api("GET", chatPath(id, "system")));
    setStatus("");
  } catch (error) {
    setStatus("");
    showError(error);
  }
}

async function loadHistory(before) {
  const id = state.chatId;
  let path = chatPath(id, `chat?limit=${HISTORY_PAGE}`);
  if (before !== undefined) path += `&before=${before}`;
  const messages = await api("GET", path);
  if (id !== state.chatId) return; // the user moved on meanwhile
  const list = $("messages");
  const scroller = list.parentElement;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  list.prepend(...messages.filter((m) => m.role !== "system").map(messageElement));
  if (messages.length) state.firstMessageId = messages[0].id;
  $("more-messages").hidden = !messages.length || messages[0].id <= 0;
  $("delete-chat").disabled = false;
  updateEmpty();
  // Keep the view where it was when older messages come in above; start at the bottom.
  scroller.scrollTop = before === undefined ? scroller.scrollHeight : scroller.scrollHeight - fromBottom;
}

async function loadEarlier() {
  const button = $("more-messages");
  button.disabled = true;
  try {
    await loadHistory(state.firstMessageId);
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

// -- sending, with the reply streaming in -------------------------------------------------------

function setSending(sending) {
  state.sending = sending;
  $("send").disabled = sending;
  $("messages").setAttribute("aria-busy", String(sending));
}

async function send(text) {
  const id = state.chatId;
  const list = $("messages");
  const mine = messageElement({ role: "user", content: text, created_at: Date.now() / 1000 });
  const reply = messageElement({ role: "assistant", content: "" });
  reply.classList.add("streaming");
  list.append(mine, reply);
  updateEmpty();
  const scroller = list.parentElement;
  scroller.scrollTop = scroller.scrollHeight;
  clearError();
  setSending(true);
  setStatus("The assistant is replying…");
  const replyText = reply.querySelector(".text");
  try {
    const response = await request(
      "POST",
      chatPath(id, "chat"),
      { content: text, stream: true },
      { Accept: "text/event-stream" },
    );
    let finished = null;
    for await (const { event, data } of serverEvents(response)) {
      if (event === "delta") {
        replyText.textContent += data.content;
        scroller.scrollTop = scroller.scrollHeight;
      } else if (event === "done") {
        finished = data;
      } else if (event === "error") {
        throw new ApiError(0, data.code, data.error, null);
      }
    }
    if (!finished) throw new ApiError(0, "reply_cut", "", null);
    replyText.textContent = textOf(finished.content);
    reply.classList.remove("streaming");
    setMeta(reply, finished);
    mine.dataset.sent = "true";
    state.isNew = false;
    $("delete-chat").disabled = false;
    noteTurn(id, text);
    showChatHeader();
    setStatus("");
  } catch (error) {
    // Nothing is stored when a turn fails: take the pair back and give the text back to retry.
    mine.remove();
    reply.remove();
    updateEmpty();
    if (!$("message").value) $("message").value = text;
    setStatus("");
    showError(error);
  } finally {
    setSending(false);
  }
}

function submitMessage() {
  const box = $("message");
  const text = box.value;
  if (state.sending || !text.trim()) return;
  box.value = "";
  send(text);
}

// -- system prompt, delete, key -----------------------------------------------------------------

async function toggleSystemForm() {
  const form = $("system-form");
  if (!form.hidden) {
    closeSystemForm();
    return;
  }
  clearError();
  try {
    const system = await api("GET", chatPath(state.chatId, "system"));
    $("system-text").value = system.source === "chat" ? system.content : "";
    $("system-source").textContent =
      system.source === "chat"
        ? "This chat has its own prompt."
        : system.content
          ? `This chat uses the default prompt: “${system.content}”`
          : "No prompt: the model gets only the messages.";
    form.hidden = false;
    $("edit-system").setAttribute("aria-expanded", "true");
    $("system-text").focus();
  } catch (error) {
    showError(error);
  }
}

function closeSystemForm() {
  $("system-form").hidden = true;
  $("edit-system").setAttribute("aria-expanded", "false");
  $("edit-system").focus();
}

async function saveSystem(content) {
  clearError();
  try {
    const path = chatPath(state.chatId, "system");
    const system = content.trim()
      ? await api("POST", path, { content })
      : await api("DELETE", path);
    showSystem(system);
    closeSystemForm();
    setStatus(system.source === "chat" ? "System prompt saved." : "Using the default prompt.");
  } catch (error) {
    showError(error);
  }
}

async function deleteChat() {
  if (state.isNew) return;
  if (!confirm("Delete this chat and all its messages?")) return;
  clearError();
  const id = state.chatId;
  try {
    await api("DELETE", chatPath(id, "chat"));
    state.chats = state.chats.filter((c) => c.id !== id);
    await openChat(newChatId(), true);
    setStatus("Chat deleted.");
    $("message").focus();
  } catch (error) {
    showError(error);
  }
}

function openKeyDialog() {
  $("key-input").value = state.key;
  $("key-dialog").showModal();
}

function saveKey(key) {
  state.key = key.trim();
  if (state.key) localStorage.setItem(KEY_STORAGE, state.key);
  else localStorage.removeItem(KEY_STORAGE);
  $("key-dialog").close();
  clearError();
  loadChats(false);
  if (!state.isNew) openChat(state.chatId, false);
}

async function showServer() {
  try {
    const response = await fetch(`${API_BASE}/`, { cache: "no-store" });
    const health = await response.json();
    const parts = [`model ${health.model}`];
    if (health.upstream === "dev") parts.push("offline dev upstream");
    if (health.auth === "none") parts.push("open server, no key needed");
    if (health.status !== "ok") parts.push("chat store unavailable");
    $("notice").textContent = parts.join(" · ");
    $("notice").title = health.notice || "";
    $("notice").hidden = false;
    return health;
  } catch (_) {
    return null;
  }
}

// -- wiring -------------------------------------------------------------------------------------

function wire() {
  // The skip link moves focus itself: following "#message" would replace the chat in the URL.
  $("skip").addEventListener("click", (event) => {
    event.preventDefault();
    $("message").focus();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    submitMessage();
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitMessage();
    }
  });
  $("new-chat").addEventListener("click", () => {
    openChat(newChatId(), true);
    setSidebar(false);
    $("message").focus();
  });
  $("chat-list").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-chat-id]");
    if (!button) return;
    openChat(button.dataset.chatId, false);
    setSidebar(false);
  });
  $("more-chats").addEventListener("click", () => loadChats(true));
  $("more-messages").addEventListener("click", loadEarlier);
  $("toggle-chats").addEventListener("click", () => {
    setSidebar(!$("sidebar").classList.contains("open"));
  });
  $("sidebar").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && $("sidebar").classList.contains("open")) {
      setSidebar(false);
      $("toggle-chats").focus();
    }
  });
  $("edit-system").addEventListener("click", toggleSystemForm);
  $("system-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveSystem($("system-text").value);
  });
  $("remove-system").addEventListener("click", () => saveSystem(""));
  $("cancel-system").addEventListener("click", closeSystemForm);
  $("delete-chat").addEventListener("click", deleteChat);
  $("dismiss-error").addEventListener("click", clearError);
  $("open-key").addEventListener("click", openKeyDialog);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveKey($("key-input").value);
  });
  $("forget-key").addEventListener("click", () => saveKey(""));
  $("cancel-key").addEventListener("click", () => $("key-dialog").close());
}

async function start() {
  wire();
  const linked = new URLSearchParams(location.hash.slice(1)).get("chat");
  const wanted = linked && validChatId(linked) ? linked : null;
  const health = await showServer();
  if (health && health.auth === "api_keys" && !state.key) {
    openKeyDialog();
    openChat(wanted || newChatId(), !wanted);
    return;
  }
  await loadChats(false);
  await openChat(wanted || newChatId(), !wanted);
}

start();
