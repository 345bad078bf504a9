// The open chat: its header, its history paged back from the newest, and sending a message with
// the reply streaming in (shown as Markdown as it grows).

import { api, ApiError, chatPath, request, serverEvents } from "./api.js";
import { noteTurn, renderChats } from "./chats.js";
import { $ } from "./dom.js";
import { messageElement, setMeta, setText, textOf } from "./messages.js";
import { clearError, setStatus, showError } from "./notices.js";
import { state } from "./state.js";

const HISTORY_PAGE = 50;

function updateEmpty() {
  $("empty-chat").hidden = $("messages").children.length > 0;
}

export function showChatHeader() {
  const chat = state.chats.find((c) => c.id === state.chatId);
  const name = state.isNew && !chat ? "New chat" : (chat && chat.title) || state.chatId;
  $("chat-name").textContent = name;
  $("chat-name").title = `Chat id: ${state.chatId}`;
  document.title = `${name} · chatproxy`;
}

export function showSystem(system) {
  const line = $("chat-system");
  if (!system || !system.content) {
    line.textContent = "";
    return;
  }
  const from = system.source === "chat" ? "System prompt" : "Default system prompt";
  line.textContent = `${from}: ${system.content}`;
}

export async function openChat(id, isNew) {
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
  const answer = await api("GET", path);
  if (id !== state.chatId) return; // the user moved on meanwhile
  const messages = Array.isArray(answer) ? answer.filter((m) => m && typeof m === "object") : [];
  const list = $("messages");
  const scroller = list.parentElement;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  list.prepend(...messages.filter((m) => m.role !== "system").map(messageElement));
  // Without a numeric id on the oldest message there is no paging back from it.
  const oldest = messages.length ? messages[0].id : null;
  state.firstMessageId = typeof oldest === "number" ? oldest : null;
  $("more-messages").hidden = state.firstMessageId === null || state.firstMessageId <= 0;
  $("delete-chat").disabled = false;
  updateEmpty();
  // Keep the view where it was when older messages come in above; start at the bottom.
  scroller.scrollTop = before === undefined ? scroller.scrollHeight : scroller.scrollHeight - fromBottom;
}

export async function loadEarlier() {
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

function setSending(sending) {
  state.sending = sending;
  $("send").disabled = sending;
  $("messages").setAttribute("aria-busy", String(sending));
}

// Read a streamed turn's events; show the text as it grows, at most once a frame. Return the
// stored reply the last event carries.
async function readReply(response, reply, scroller) {
  let text = "";
  let frame = 0;
  const show = () => {
    frame = 0;
    setText(reply, text);
    scroller.scrollTop = scroller.scrollHeight;
  };
  try {
    for await (const { event, data } of serverEvents(response)) {
      if (event === "delta") {
        text += data.content;
        if (!frame) frame = requestAnimationFrame(show);
      } else if (event === "done") {
        return data;
      } else if (event === "error") {
        throw new ApiError(0, data.code, data.error, null);
      }
    }
  } finally {
    cancelAnimationFrame(frame);
  }
  throw new ApiError(0, "reply_cut", "", null);
}

export async function send(text) {
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
  try {
    const response = await request(
      "POST",
      chatPath(id, "chat"),
      { content: text, stream: true },
      { Accept: "text/event-stream" },
    );
    const finished = await readReply(response, reply, scroller);
    setText(reply, textOf(finished.content));
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
