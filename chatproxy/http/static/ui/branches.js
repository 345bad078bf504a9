// A chat is a tree: each message's controls for its branches, and the editor of a message.
// "‹ 2/3 ›" steps between the versions of a message (its siblings: the other answers to the
// message before it, or the other edits of it), "Edit" opens the editor on what the user wrote,
// "Regenerate" asks for another reply. The requests are conversation.js's and turns.js's.

import { element } from "./dom.js";
import { messageOf, textOf } from "./messages.js";
import { state } from "./state.js";
import { isMessageItem } from "./summaries.js";

const KINDS = ["previous", "next", "edit", "regenerate"];

function button(kind, label, text) {
  const control = element("button", `ghost small ${kind}`, text);
  control.type = "button";
  control.setAttribute("aria-label", label);
  return control;
}

// "‹ 2/3 ›", or nothing for a message without other versions.
function versions(message) {
  const siblings = Array.isArray(message.siblings) ? message.siblings : [];
  const at = siblings.indexOf(message.id);
  if (siblings.length < 2 || at < 0) return null;
  const group = element("div", "versions");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", `Version ${at + 1} of ${siblings.length}`);
  const previous = button("previous", "Previous version", "‹");
  const next = button("next", "Next version", "›");
  // Kept focusable at either end, so that stepping by keyboard never drops the focus.
  if (at === 0) previous.setAttribute("aria-disabled", "true");
  if (at === siblings.length - 1) next.setAttribute("aria-disabled", "true");
  const count = element("span", "count", `${at + 1}/${siblings.length}`);
  count.setAttribute("aria-hidden", "true"); // the group's name says it in words
  group.append(previous, count, next);
  return group;
}

// Whether `message` is placed in the tree: an edit needs its parent (null for a first message).
function placed(message) {
  return message.parent === null || typeof message.parent === "number";
}

function controls(message, before) {
  if (message.dropped) return null; // shown still, but the chat no longer holds it
  const bar = element("div", "actions");
  const steps = versions(message);
  if (steps) bar.append(steps);
  if (message.role === "user" && typeof message.content === "string" && placed(message)) {
    bar.append(button("edit", "Edit message", "Edit"));
  }
  // Another reply is asked of the user message it answers; a reply to a tool's result has none.
  const asked = messageOf(before);
  if (message.role === "assistant" && asked.role === "user" && message.parent === asked.id) {
    bar.append(button("regenerate", "Regenerate reply", "Regenerate"));
  }
  if (state.sending) {
    bar.querySelectorAll("button").forEach((b) => b.setAttribute("aria-disabled", "true"));
  }
  return bar.children.length ? bar : null;
}

function kindOf(control) {
  return KINDS.find((kind) => control.classList.contains(kind));
}

// (Re)build every message's controls from what it shows and the message before it (a summary
// between them is passed over); a control that had the focus keeps it.
export function showControls(list) {
  let before = null;
  for (const item of list.children) {
    if (!isMessageItem(item)) continue;
    const old = item.querySelector(":scope > .actions");
    const focused = old && old.contains(document.activeElement) && kindOf(document.activeElement);
    const bar = controls(messageOf(item), before);
    before = item;
    if (old) old.remove();
    if (!bar) continue;
    item.append(bar);
    if (focused) focusControl(item, focused);
  }
}

// Give the focus to a message's control of a kind ("edit", "next", ...), if it has one.
export function focusControl(item, kind) {
  const control = item.querySelector(`:scope > .actions .${kind}`);
  if (control) control.focus();
}

// Whether a control may act now: not while a reply streams in, nor at the end of the versions.
export function usable(control) {
  return control.getAttribute("aria-disabled") !== "true" && !state.sending;
}

// The message's versions and which of them it is.
export function versionsOf(item) {
  const message = messageOf(item);
  const siblings = Array.isArray(message.siblings) ? message.siblings : [];
  return { siblings, at: siblings.indexOf(message.id) };
}

export function editorOf(item) {
  return item.querySelector(":scope > .editor");
}

// Turn a message of the user's into a box holding its text, with Save and Cancel.
export function openEditor(item, text) {
  for (const open of item.parentElement.querySelectorAll(".editor")) {
    closeEditor(open.parentElement, false);
  }
  const form = element("form", "editor");
  const box = element("textarea");
  box.rows = 3;
  box.setAttribute("aria-label", "Edited message");
  box.setAttribute("aria-describedby", "edit-hint");
  box.value = text === undefined ? textOf(messageOf(item).content) : text;
  const save = element("button", "primary small", "Save");
  save.type = "submit";
  const cancel = element("button", "ghost small cancel-edit", "Cancel");
  cancel.type = "button";
  const row = element("div", "row");
  row.append(save, cancel);
  const keys = "Enter saves, Shift+Enter starts a new line, Esc cancels.";
  const hint = element("p", "muted small", keys);
  hint.id = "edit-hint";
  form.append(box, row, hint);
  item.querySelector(":scope > .who").after(form);
  item.classList.add("editing");
  while (box.scrollHeight > box.clientHeight && box.rows < 12) box.rows += 1; // all of it in view
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

// Close the editor; the message's Edit button gets the focus back.
export function closeEditor(item, refocus = true) {
  const form = editorOf(item);
  if (form) form.remove();
  item.classList.remove("editing");
  if (refocus) focusControl(item, "edit");
}
