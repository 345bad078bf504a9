// A summary of the earlier conversation (compaction) in the list of messages, where the API puts
// it: right after the last message it covers. It is shown collapsed, its text as plain text, and
// has no controls: it is no message of the tree (no id, no versions), and the list's code that
// walks messages skips it.

import { element } from "./dom.js";
import { messageElement } from "./messages.js";

export function isSummary(entry) {
  return entry !== null && typeof entry === "object" && entry.type === "summary";
}

// Whether a list element shows a message (not a summary).
export function isMessageItem(item) {
  return item.classList.contains("message");
}

// The first entry of a page that is a message (a page never starts with a summary, but a
// message's id is what paging needs).
export function firstMessage(entries) {
  return entries.find((entry) => !isSummary(entry));
}

function meta(summary) {
  const parts = [];
  if (typeof summary.created_at === "number") {
    parts.push(`made ${new Date(summary.created_at * 1000).toLocaleString()}`);
  }
  if (typeof summary.model === "string" && summary.model) parts.push(`by ${summary.model}`);
  if (summary.tokens && summary.tokens.total_tokens) {
    parts.push(`${summary.tokens.total_tokens} tokens`);
  }
  return parts.join(" · ");
}

export function summaryElement(summary) {
  const item = element("li", "summary-block");
  const block = element("details");
  const text = typeof summary.content === "string" ? summary.content : "";
  block.append(
    element("summary", "", "Earlier conversation summarized"),
    element("p", "summary-text", text || "(empty)"),
  );
  const made = meta(summary);
  if (made) block.append(element("p", "meta", made));
  item.append(block);
  return item;
}

// The element of an entry of `GET /<chat_id>/chat?include=summaries`.
export function entryElement(entry) {
  return isSummary(entry) ? summaryElement(entry) : messageElement(entry);
}
