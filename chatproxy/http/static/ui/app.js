// The chat page: talks to the proxy's own API from the same origin; no framework, no build step.
// Its modules, each imported where it is used: state (what the page knows), api (requests),
// notices (errors and the status line), chats (the side bar), conversation (the open chat and
// the path through it on screen), turns (sending, editing, regenerating), branches (each
// message's version, edit and regenerate controls, and the editor), messages (one message's
// elements), summaries (the collapsed summaries of earlier parts of a long chat), transfer
// (export and import) and markdown (the model's replies, sanitized).
// Text from a user or the model reaches the page as text (textContent), or, for the model's
// replies, as Markdown turned into nodes that DOMPurify sanitized: this page never assigns HTML.

import { API_BASE, api, chatPath, validChatId } from "./api.js";
import { closeEditor, editorOf, openEditor, usable } from "./branches.js";
import { loadChats, loadOlder, setSidebar } from "./chats.js";
import { loadEarlier, openChat, showSystem, stepVersion } from "./conversation.js";
import { $ } from "./dom.js";
import { copyCode } from "./markdown.js";
import { clearError, setStatus, showError } from "./notices.js";
import { KEY_STORAGE, state } from "./state.js";
import { exportAll, exportChat, importFile } from "./transfer.js";
import { regenerate, saveEdit, send } from "./turns.js";

const NARROW = "(max-width: 760px)"; // as style.css's: the chat list opens over the chat

function newChatId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // a version 4 UUID
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function submitMessage() {
  const box = $("message");
  const text = box.value;
  if (state.sending || !text.trim()) return;
  box.value = "";
  send(text);
}

// Enter sends (or saves an edit), Shift+Enter starts a new line, as in the message box.
function isSend(event) {
  return event.key === "Enter" && !event.shiftKey && !event.isComposing;
}

function saveEditor(item) {
  const text = editorOf(item).querySelector("textarea").value;
  if (state.sending || !text.trim()) return;
  saveEdit(item, text);
}

async function copyFrom(button) {
  const copied = await copyCode(button);
  setStatus(copied ? "Code copied." : "Could not copy: the code is selected, copy it from there.");
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

// Put the focus in the message box, closing the chat list first if it is open over the chat (on
// a narrow screen): what the list covers is inert, so the box could not take the focus.
function toMessageBox() {
  setSidebar(false);
  $("message").focus();
}

// -- wiring -------------------------------------------------------------------------------------

function on(id, type, listener) {
  $(id).addEventListener(type, listener);
}

function withoutDefault(action) {
  return (event) => {
    event.preventDefault();
    action();
  };
}

function wireChat() {
  // The skip link moves focus itself: following "#message" would replace the chat in the URL.
  on("skip", "click", withoutDefault(toMessageBox));
  on("composer", "submit", withoutDefault(submitMessage));
  on("message", "keydown", (event) => {
    if (isSend(event)) {
      event.preventDefault();
      submitMessage();
    }
  });
  on("messages", "click", (event) => {
    const button = event.target.closest("button.copy");
    if (button) copyFrom(button);
  });
  on("more-messages", "click", loadEarlier);
  on("edit-system", "click", toggleSystemForm);
  on("system-form", "submit", withoutDefault(() => saveSystem($("system-text").value)));
  on("remove-system", "click", () => saveSystem(""));
  on("cancel-system", "click", closeSystemForm);
  on("system-form", "keydown", (event) => {
    if (event.key === "Escape") closeSystemForm(); // as in the edit box: cancels, unsaved
  });
  on("delete-chat", "click", deleteChat);
  on("dismiss-error", "click", () => {
    clearError();
    $("message").focus(); // not left on the button, hidden now
  });
}

// The messages' version, edit and regenerate controls, and the editor an Edit opens.
function wireBranches() {
  on("messages", "click", (event) => {
    const button = event.target.closest(".actions button, button.cancel-edit");
    if (!button) return;
    const item = button.closest("li.message");
    if (button.classList.contains("cancel-edit")) closeEditor(item);
    else if (!usable(button)) return;
    else if (button.classList.contains("edit")) openEditor(item);
    else if (button.classList.contains("regenerate")) regenerate(item);
    else stepVersion(item, button.classList.contains("previous") ? -1 : 1);
  });
  on("messages", "submit", (event) => {
    event.preventDefault();
    saveEditor(event.target.closest("li.message"));
  });
  on("messages", "keydown", (event) => {
    if (!event.target.closest(".editor")) return;
    const item = event.target.closest("li.message");
    if (event.key === "Escape") closeEditor(item);
    else if (isSend(event) && event.target.tagName === "TEXTAREA") {
      event.preventDefault();
      saveEditor(item);
    }
  });
}

function wireSidebar() {
  on("new-chat", "click", () => {
    openChat(newChatId(), true);
    toMessageBox();
  });
  on("chat-list", "click", (event) => {
    const button = event.target.closest("button[data-chat-id]");
    if (!button) return;
    openChat(button.dataset.chatId, false);
    // Open over the chat (on a narrow screen), the list closes, the button with the focus in it:
    // the focus goes on to the message box, as after New chat.
    if ($("sidebar").classList.contains("open")) toMessageBox();
  });
  on("more-chats", "click", loadOlder);
  on("export-chat", "click", exportChat);
  on("export-all", "click", exportAll);
  on("import-chats", "click", () => $("import-file").click());
  on("import-file", "change", () => {
    const [file] = $("import-file").files;
    $("import-file").value = ""; // so that choosing the same file again imports it again
    if (file) importFile(file);
  });
  on("toggle-chats", "click", () => setSidebar(!$("sidebar").classList.contains("open")));
  // Escape closes the list open over the chat wherever the focus is (in the list, or still on
  // the top bar's buttons), but in a dialog, which Escape closes instead. The focus in the list
  // goes to its Chats button, as the list hides it.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !$("sidebar").classList.contains("open")) return;
    if (event.target.closest("dialog")) return;
    const within = $("sidebar").contains(document.activeElement);
    setSidebar(false);
    if (within) $("toggle-chats").focus();
  });
  // A screen grown wide shows the list beside the chat: it covers nothing, so it is closed.
  matchMedia(NARROW).addEventListener("change", (event) => {
    if (!event.matches) setSidebar(false);
  });
}

function wireKey() {
  on("open-key", "click", openKeyDialog);
  on("key-form", "submit", withoutDefault(() => saveKey($("key-input").value)));
  on("forget-key", "click", () => saveKey(""));
  on("cancel-key", "click", () => $("key-dialog").close());
}

async function start() {
  wireChat();
  wireBranches();
  wireSidebar();
  wireKey();
  const linked = new URLSearchParams(location.hash.slice(1)).get("chat");
  const wanted = linked && validChatId(linked) ? linked : null;
  const health = await showServer();
  if (health && health.auth === "api_keys" && !state.key) {
    openKeyDialog();
    openChat(wanted || newChatId(), !wanted);
    return;
  }
  const failed = await loadChats(false);
  await openChat(wanted || newChatId(), !wanted);
  // Opening the chat clears the alert: a list that could not be read (a key revoked since it
  // was saved, the server busy) is still said.
  if (failed && $("error").hidden) showError(failed);
}

start();
