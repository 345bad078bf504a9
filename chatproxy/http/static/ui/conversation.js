// The open chat: its header and the path through its tree that is shown, paged back from the
// newest message, with the summaries of earlier parts (compaction) where they come; stepping to
// another version of a message shows the branch below that version.

import { api, chatPath } from "./api.js";
import { renderChats } from "./chats.js";
import { focusControl, showControls, versionsOf } from "./branches.js";
import { $, loadMore } from "./dom.js";
import { markGone, messageOf, setMessage } from "./messages.js";
import { GONE_WORDS, clearError, setStatus, showError } from "./notices.js";
import { state } from "./state.js";
import { entryElement, firstMessage, isMessageItem, isSummary } from "./summaries.js";

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
  state.oldest = null;
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
async function fetchEntries(id, before, leaf) {
  let path = chatPath(id, `chat?include=summaries&limit=${HISTORY_PAGE}`);
  if (before !== undefined) path += `&before=${before}`;
  if (leaf !== undefined) path += `&leaf=${leaf}`;
  const answer = await api("GET", path);
  const entries = Array.isArray(answer) ? answer : [];
  return entries.filter((m) => m && typeof m === "object");
}

// What of a page is shown: not the system messages a chat may hold.
function shownOf(entries) {
  return entries.filter((m) => m.role !== "system");
}

async function fetchPage(id, before, leaf) {
  return shownOf(await fetchEntries(id, before, leaf));
}

// Whether the path goes on above its oldest message read: a message with a parent has an
// earlier page, unless this page came back short (MAX_CHAT_MESSAGES dropped that parent: the
// path starts there). An empty earlier page leaves the one before it the oldest.
function noteOldest(oldest, short) {
  if (oldest) state.oldest = oldest;
  const first = state.oldest;
  const more = !short && first && typeof first.id === "number" && typeof first.parent === "number";
  state.firstMessageId = more ? first.id : null;
  $("more-messages").hidden = state.firstMessageId === null;
}

// Whether `item` is the first message of the path, shown: its versions are the chat's first
// messages, and an edit of it starts a new path (its parent, if any, is one trimming dropped).
export function startsPath(item) {
  let first = $("messages").firstElementChild;
  while (first && !isMessageItem(first)) first = first.nextElementSibling;
  const oldest = state.oldest;
  const shown = oldest !== null && oldest.role !== "system"; // not a system message, hidden
  return item === first && state.firstMessageId === null && shown;
}

async function loadHistory(before) {
  const id = state.chatId;
  const entries = await fetchEntries(id, before);
  if (id !== state.chatId) return; // the user moved on meanwhile
  const messages = shownOf(entries);
  const list = $("messages");
  const scroller = list.parentElement;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  list.prepend(...messages.map(entryElement));
  showControls(list);
  const count = entries.filter((entry) => !isSummary(entry)).length;
  noteOldest(firstMessage(entries), count < HISTORY_PAGE);
  setStored(true);
  updateEmpty();
  // Keep the view where it was when older messages come in above; start at the bottom.
  scroller.scrollTop = before === undefined ? scroller.scrollHeight : scroller.scrollHeight - fromBottom;
}

// Show the page before the oldest message shown; once none is left, the focus goes to the
// oldest message's first control, where reading starts.
export function loadEarlier() {
  const load = () => loadHistory(state.firstMessageId).catch(showError);
  const oldest = () => $("messages").querySelector("button, summary, a[href]") || $("message");
  return loadMore($("more-messages"), load, oldest);
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

// The message shown with the id `messageId`, if any.
export function shownItem(messageId) {
  const items = Array.from($("messages").children).filter(isMessageItem);
  return items.find((item) => messageOf(item).id === messageId);
}

// Trimming (MAX_CHAT_MESSAGES) drops a chat's oldest messages, some shown here among them: once a
// turn is stored, and before any control comes back, the page reads the chat's first messages,
// which start at the lowest id it still holds (ids grow down every path), with the number of
// messages it holds (the chat list's count), and checks the messages on screen against them
// (dropGone). A message whose parent is gone starts a path now, with them as its versions (an
// edit of it is a first message, and a reply to a question gone cannot be asked again); one gone
// itself stays on screen, marked so, with nothing to act on (no versions, no Edit or
// Regenerate), and nothing is left above it to page back to. What another client drops
// meanwhile is found when an action on it is refused, and the chat is read again (turns.js, and
// stepVersion below).

// The chat's first messages and its size, as GET children answers them: `children` (their ids)
// and `messages` (how many it holds); null, the error shown, if they could not be read.
export async function readStarts(id) {
  try {
    return await api("GET", chatPath(id, "children"));
  } catch (error) {
    showError(error);
    return null;
  }
}

// Mark what trimming dropped of the messages shown, given the ids of the chat's first messages
// `starts` (read by readStarts); the controls are the caller's to show again.
export function dropGone(starts) {
  if (!starts || !starts.length) return;
  const kept = Math.min(...starts);
  for (const item of Array.from($("messages").children).filter(isMessageItem)) {
    const message = messageOf(item);
    if (typeof message.id !== "number") continue;
    const startsHere = message.parent === null || message.parent < kept;
    if (message.id < kept) {
      setMessage(item, { ...message, siblings: [], dropped: true });
      markGone(item);
    } else if (startsHere) setMessage(item, { ...message, parent: null, siblings: starts });
  }
  const oldest = state.oldest;
  if (oldest && typeof oldest.parent === "number" && oldest.parent < kept) noteOldest(null, true);
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
    if (error.status !== 404 || id !== state.chatId) {
      showError(error);
      return;
    }
    // The version is gone (another client's turns trimmed it, or it was removed): what is shown
    // may be gone too, so the chat is read again, and the focus, on an arrow no more, goes to
    // the message box.
    await openChat(id, false);
    if ($("error").hidden) showError(GONE_WORDS);
    $("message").focus();
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
