// The open chat: its header and the path through its tree that is shown, paged back from the
// newest message, with the summaries of earlier parts (compaction) where they come; stepping to
// another version of a message shows the branch below that version.

import { api, chatPath } from "./api.js";
import { renderChats } from "./chats.js";
import { focusControl, showControls, versionsOf } from "./branches.js";
import { $ } from "./dom.js";
import { messageOf } from "./messages.js";
import { clearError, setStatus, showError } from "./notices.js";
import { state } from "./state.js";
import { entryElement, firstMessage, isMessageItem } from "./summaries.js";

const HISTORY_PAGE = 50;

export function updateEmpty() {
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

// Whether the open chat is stored yet: only then can it be deleted or exported.
export function setStored(stored) {
  $("delete-chat").disabled = !stored;
  $("export-chat").disabled = !stored;
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
  setStored(!isNew);
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

// The id of the newest message shown: the end of the path on screen (undefined if none).
export function shownLeaf() {
  let item = $("messages").lastElementChild;
  while (item && !isMessageItem(item)) item = item.previousElementSibling;
  const id = item ? messageOf(item).id : undefined;
  return typeof id === "number" ? id : undefined;
}

// A page of the path that ends at `leaf` (the chat's current leaf if undefined): its newest
// messages; or the messages before the message `before`, the same on every path through it.
// Each summary of the path comes right after the last message it covers.
async function fetchPage(id, before, leaf) {
  let path = chatPath(id, `chat?include=summaries&limit=${HISTORY_PAGE}`);
  if (before !== undefined) path += `&before=${before}`;
  if (leaf !== undefined) path += `&leaf=${leaf}`;
  const answer = await api("GET", path);
  const messages = Array.isArray(answer) ? answer : [];
  return messages.filter((m) => m && typeof m === "object" && m.role !== "system");
}

// Whether the path goes on above `oldest`: a message with a parent has an earlier page.
function noteOldest(oldest) {
  const more = oldest && typeof oldest.id === "number" && typeof oldest.parent === "number";
  state.firstMessageId = more ? oldest.id : null;
  $("more-messages").hidden = state.firstMessageId === null;
}

async function loadHistory(before) {
  const id = state.chatId;
  const messages = await fetchPage(id, before);
  if (id !== state.chatId) return; // the user moved on meanwhile
  const list = $("messages");
  const scroller = list.parentElement;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  list.prepend(...messages.map(entryElement));
  showControls(list);
  noteOldest(firstMessage(messages));
  setStored(true);
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

// The path from the message `from` down to `leaf`, read back a page at a time until it is in.
async function pathFrom(id, from, leaf) {
  let messages = await fetchPage(id, undefined, leaf);
  let at = messages.findIndex((m) => m.id === from);
  let oldest = firstMessage(messages);
  while (at < 0 && oldest && typeof oldest.parent === "number") {
    const earlier = await fetchPage(id, oldest.id);
    if (!earlier.length) break;
    messages = earlier.concat(messages);
    at = messages.findIndex((m) => m.id === from);
    oldest = firstMessage(messages);
  }
  if (at < 0) throw new Error("the chat changed meanwhile: open it again");
  return messages.slice(at);
}

// Show the version `step` away (-1 or 1) of a message, and below it the branch that continues
// from that version to its newest message; that branch becomes the chat's current one.
export async function stepVersion(item, step) {
  const { siblings, at } = versionsOf(item);
  const target = siblings[at + step];
  if (target === undefined) return;
  const id = state.chatId;
  clearError();
  try {
    const moved = await api("POST", chatPath(id, "leaf"), { id: target, descend: true });
    const path = await pathFrom(id, target, moved.leaf);
    if (id !== state.chatId || !item.isConnected) return;
    showBranch(item, path.map(entryElement), step < 0 ? "previous" : "next");
    setStatus(`Showing version ${at + step + 1} of ${siblings.length}.`);
  } catch (error) {
    showError(error);
  }
}

// Put `shown` in place of `item` and all below it, where `item` was on screen; the control
// `focus` of the new version gets the focus.
function showBranch(item, shown, focus) {
  const list = $("messages");
  const scroller = list.parentElement;
  const top = item.getBoundingClientRect().top;
  while (item.nextElementSibling) item.nextElementSibling.remove();
  item.replaceWith(...shown);
  showControls(list);
  scroller.scrollTop += shown[0].getBoundingClientRect().top - top;
  focusControl(shown[0], focus);
}
