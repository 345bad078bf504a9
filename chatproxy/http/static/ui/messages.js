// One message of the list as page elements: what the user wrote as plain text, the model's
// replies as sanitized Markdown, tool calls and their results as collapsed blocks of plain text.
// A message from the API may lack any field; it still gets an element, which keeps the message
// (its id, parent and siblings) for the branch controls.

import { element } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const WHO = { user: "You", assistant: "Assistant", system: "System prompt", tool: "Tool" };
const toolNames = new Map(); // tool call id -> the function's name, for results that name none
const messages = new WeakMap(); // element -> the message it shows

// The message an element shows, as the API gave it (`{}` for an element that is no message).
export function messageOf(item) {
  return messages.get(item) || {};
}

// What the element shows is now `message`: once its turn is stored, it has an id.
export function setMessage(item, message) {
  messages.set(item, message);
}

// A part that is not text, as a placeholder: "[image]", "[file: report.pdf]", "[audio]".
function placeholder(part) {
  const file = part && part.type === "file" && part.file;
  if (file) return typeof file.filename === "string" ? `[file: ${file.filename}]` : "[file]";
  return part && part.type === "input_audio" ? "[audio]" : "[image]";
}

export function textOf(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((part) => (part && part.type === "text" ? part.text : placeholder(part)))
    .join("\n");
}

// JSON shown indented; anything else as it is.
function pretty(value) {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") return JSON.stringify(value, null, 2);
  try {
    const parsed = JSON.parse(value);
    if (parsed !== null && typeof parsed === "object") return JSON.stringify(parsed, null, 2);
  } catch (_) {
    // not JSON: shown as sent
  }
  return value;
}

function toolBlock(kind, verb, name, text) {
  const block = element("details", `tool-block ${kind}`);
  const summary = element("summary", "", `${verb} `);
  summary.append(element("code", "", name));
  block.append(summary, element("pre", "", text || "(empty)"));
  return block;
}

function toolCall(call) {
  const fn = (call && call.function) || {};
  const name = typeof fn.name === "string" && fn.name ? fn.name : "a tool";
  if (call && typeof call.id === "string") toolNames.set(call.id, name);
  return toolBlock("tool-call", "Called", name, pretty(fn.arguments));
}

function toolResult(message) {
  const names = [message.name, toolNames.get(message.tool_call_id), message.tool_call_id];
  const name = names.find((each) => typeof each === "string" && each) || "a tool";
  return toolBlock("tool-result", "Result of", name, pretty(textOf(message.content)));
}

// Show `text` as the message's text: Markdown for the model's replies, plain for the rest.
export function setText(item, text) {
  const body = item.querySelector(":scope > .text");
  if (item.dataset.role === "assistant") body.replaceChildren(renderMarkdown(text));
  else body.textContent = text;
  body.hidden = !text && item.querySelector(":scope > .tool-call") !== null;
}

export function messageElement(message) {
  const role = typeof message.role === "string" ? message.role : "unknown";
  const item = element("li", "message");
  setMessage(item, message);
  const known = Object.hasOwn(WHO, role);
  item.dataset.role = role;
  if (known) item.classList.add(role);
  item.append(element("span", "who", known ? WHO[role] : role));
  if (role === "tool") {
    item.append(toolResult(message));
  } else {
    item.append(element("div", role === "assistant" ? "text markdown" : "text"));
    if (Array.isArray(message.tool_calls)) item.append(...message.tool_calls.map(toolCall));
    setText(item, textOf(message.content));
  }
  setMeta(item, message);
  return item;
}

export function setMeta(item, message) {
  const parts = [];
  if (typeof message.created_at === "number") {
    const when = new Date(message.created_at * 1000);
    parts.push(when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  }
  if (message.role === "assistant" && message.model) parts.push(message.model);
  if (message.role === "assistant" && message.tokens && message.tokens.total_tokens) {
    parts.push(`${message.tokens.total_tokens} tokens`);
  }
  let meta = item.querySelector(":scope > .meta");
  if (!parts.length) return;
  if (!meta) {
    meta = element("span", "meta");
    item.append(meta);
  }
  meta.textContent = parts.join(" · ");
}

// The message stays on screen, but the chat no longer holds it (MAX_CHAT_MESSAGES dropped it):
// it says so, since it offers nothing to act on.
export function markGone(item) {
  item.classList.add("dropped");
  if (item.querySelector(":scope > .gone")) return;
  item.append(element("p", "gone", "No longer in this chat: it keeps only its newest messages."));
}
