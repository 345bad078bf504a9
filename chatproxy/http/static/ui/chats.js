// The chat list in the side bar: loaded page by page, and kept current as turns are sent.

import { api } from "./api.js";
import { $, element, loadMore } from "./dom.js";
import { showError } from "./notices.js";
import { state } from "./state.js";

const CHATS_PAGE = 20;
const TITLE_CHARS = 60;

function ago(seconds) {
  const diff = Date.now() / 1000 - seconds;
  if (diff < 60) return "just now";
  if (diff < 3600) return `${Math.floor(diff / 60)} min ago`;
  if (diff < 86400) return `${Math.floor(diff / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleDateString();
}

function chatItem(chat) {
  const button = element("button");
  button.type = "button";
  button.dataset.chatId = chat.id;
  if (chat.id === state.chatId) button.setAttribute("aria-current", "true");
  const count = `${chat.messages} message${chat.messages === 1 ? "" : "s"}`;
  button.append(
    element("span", "title", chat.title || chat.id),
    element("span", "meta", `${count} · ${ago(chat.updated)}`),
  );
  const item = element("li");
  item.append(button);
  return item;
}

// Draw the list again (a chat chosen, a turn stored, a page more): its buttons are new, so the
// focus on one of them goes to its chat's new one rather than to the page's start.
export function renderChats() {
  const list = $("chat-list");
  const active = document.activeElement;
  const focused = list.contains(active) ? active.dataset.chatId : null;
  list.replaceChildren(...state.chats.map(chatItem));
  $("chats-empty").hidden = state.chats.length > 0;
  $("more-chats").hidden = state.nextBefore === null;
  const buttons = Array.from(list.querySelectorAll("button[data-chat-id]"));
  const again = buttons.find((button) => button.dataset.chatId === focused);
  if (again) again.focus();
}

// Load the first page of chats (or the next, `more`); on failure show the error and return it.
export async function loadChats(more) {
  let path = `/chats?limit=${CHATS_PAGE}`;
  if (more && state.nextBefore !== null) {
    path += `&before=${state.nextBefore}&before_id=${encodeURIComponent(state.nextBeforeId)}`;
  }
  try {
    const page = await api("GET", path);
    state.chats = more ? state.chats.concat(page.chats) : page.chats;
    state.nextBefore = page.next_before;
    state.nextBeforeId = page.next_before_id;
    renderChats();
    return null;
  } catch (error) {
    showError(error);
    return error;
  }
}

// Show the next page of chats; once none is left, the focus goes to the first chat it brought
// (to the last chat, if it brought none).
export function loadOlder() {
  const shown = state.chats.length;
  const first = () => {
    const buttons = $("chat-list").querySelectorAll("button[data-chat-id]");
    return buttons[Math.min(shown, buttons.length - 1)] || $("new-chat");
  };
  return loadMore($("more-chats"), () => loadChats(true), first);
}

// A turn stored `added` messages, and the chat holds `held` now (null: not known), which is
// fewer when trimming (MAX_CHAT_MESSAGES) dropped its oldest: the chat moves to the top of the
// list, listed now if it is new (titled `firstText`, its first message, if known).
export function noteTurn(id, firstText, added, held) {
  const now = Date.now() / 1000;
  let chat = state.chats.find((c) => c.id === id);
  if (chat) {
    state.chats = state.chats.filter((c) => c !== chat);
    chat.messages = held ?? chat.messages + added;
    chat.updated = now;
  } else {
    const title = firstText.slice(0, TITLE_CHARS);
    chat = { id, title, created: now, updated: now, messages: held ?? added };
  }
  state.chats.unshift(chat);
  renderChats();
}

// Open or close the chat list over the chat (on a narrow screen): what it covers is inert
// meanwhile, so the focus cannot go behind it.
export function setSidebar(open) {
  $("sidebar").classList.toggle("open", open);
  $("toggle-chats").setAttribute("aria-expanded", String(open));
  $("chat").inert = open;
}
