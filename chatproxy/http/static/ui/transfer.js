// Chats out and in: the open chat's document or all chats (NDJSON) as a download, and a file
// of either kind imported, with the server's report (imported, skipped, renamed, failed) shown
// in the side bar's live region. The documents are the server's (`GET /<chat_id>/export`,
// `GET /export`, `POST /import`); the page only moves the bytes.

import { ApiError, chatPath, request, upload } from "./api.js";
import { loadChats } from "./chats.js";
import { $, element } from "./dom.js";
import { clearError, showError } from "./notices.js";
import { state } from "./state.js";

const NDJSON = "application/x-ndjson";
const NDJSON_NAME = /\.(ndjson|jsonl)$/i;

// Save what `path` answers as the file `name`, through a link made for the purpose (a fetch
// carries the key; a plain link could not).
async function download(path, name) {
  const blob = await (await request("GET", path)).blob();
  const url = URL.createObjectURL(blob);
  const link = element("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000); // once the download has taken the blob
}

export async function exportChat() {
  if (state.isNew) return;
  clearError();
  try {
    await download(chatPath(state.chatId, "export"), `${state.chatId.replace(/:/g, "_")}.json`);
    report("Exported this chat.");
  } catch (error) {
    showError(error);
  }
}

export async function exportAll() {
  clearError();
  try {
    await download("/export", "chats.ndjson");
    report("Exported all chats.");
  } catch (error) {
    showError(error);
  }
}

// The file's text up to the start of its second line that is not blank (all of it if none).
async function head(file) {
  const reader = file.stream().pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let newline = -1; // the end of the first line that is not blank
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      const from = text.length;
      text += value;
      if (newline < 0) {
        const first = text.search(/\S/);
        if (first >= 0) newline = text.indexOf("\n", Math.max(first, from));
      }
      if (newline >= 0 && /\S/.test(text.slice(newline))) return text;
    }
  } finally {
    reader.cancel();
  }
}

// NDJSON (one chat document a line) by its name, or by its first line being a whole JSON
// object with more after it; else one document (a pretty-printed one starts with "{" alone).
async function isNdjson(file) {
  if (NDJSON_NAME.test(file.name)) return true;
  const text = (await head(file)).trimStart();
  const newline = text.indexOf("\n");
  if (newline < 0 || !text.slice(newline).trim()) return false;
  try {
    const first = JSON.parse(text.slice(0, newline));
    return first !== null && typeof first === "object" && !Array.isArray(first);
  } catch (_) {
    return false;
  }
}

// ChatGPT's conversations.json or Open WebUI's chat export, told by the keys its start holds
// (a key inside a message's text is escaped there, so it does not count); null: ours.
async function foreignFormat(file) {
  const start = (await head(file)).trimStart().slice(0, 200_000);
  if (start.startsWith('{"format":"chatproxy.chat"')) return null;
  if (/"mapping"\s*:/.test(start) && /"current_node"\s*:/.test(start)) return "chatgpt";
  if (/"history"\s*:/.test(start) && /"currentId"\s*:/.test(start)) return "openwebui";
  return null;
}

export async function importFile(file) {
  clearError();
  report(`Importing ${file.name}…`);
  try {
    const ndjson = await isNdjson(file);
    const format = ndjson ? null : await foreignFormat(file);
    const path = format ? `/import?format=${format}` : "/import";
    const answer = await (await upload(path, file, ndjson ? NDJSON : "application/json")).json();
    report(`Import of ${file.name}:`, answer);
  } catch (error) {
    const refused = error instanceof ApiError && [400, 413, 422].includes(error.status);
    if (!refused) {
      report("");
      showError(error);
      return;
    }
    const reason = error.status === 413 ? tooLarge() : error.message;
    report(`Import of ${file.name}:`, { failed: [{ error: reason }] });
  }
  await loadChats(false);
}

function tooLarge() {
  return "larger than the server takes in one request: export the chats as NDJSON (one a line)";
}

// -- the report ---------------------------------------------------------------------------------

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function listOf(className, title, lines) {
  const part = element("div", className);
  const list = element("ul");
  list.append(...lines.map((line) => element("li", "", line)));
  part.append(element("p", "", title), list);
  return part;
}

function failure(failed) {
  const where = [];
  if (typeof failed.line === "number") where.push(`line ${failed.line}`);
  if (typeof failed.id === "string") where.push(`chat ${failed.id}`);
  const reason = typeof failed.error === "string" ? failed.error : "not imported";
  return where.length ? `${where.join(", ")}: ${reason}` : reason;
}

// Show `title` and, if given, what an import did, chat by chat.
function report(title, answer) {
  const area = $("transfer-report");
  area.replaceChildren();
  area.hidden = !title;
  if (!title) return;
  area.append(element("p", "report-title", title));
  if (!answer) return;
  const imported = Array.isArray(answer.imported) ? answer.imported : [];
  const skipped = Array.isArray(answer.skipped) ? answer.skipped : [];
  const renamed = Object.entries(answer.renamed || {});
  const failed = Array.isArray(answer.failed) ? answer.failed : [];
  const counts = [
    `${plural(imported.length, "chat")} imported`,
    `${skipped.length} skipped`,
    `${renamed.length} renamed`,
    `${failed.length} failed`,
  ];
  area.append(element("p", "", `${counts.join(", ")}.`));
  if (imported.length) area.append(listOf("imported", "Imported:", imported));
  if (skipped.length) area.append(listOf("skipped", "Skipped (already here):", skipped));
  if (renamed.length) {
    area.append(listOf("renamed", "Renamed:", renamed.map(([from, to]) => `${from} → ${to}`)));
  }
  if (failed.length) area.append(listOf("failed", "Failed:", failed.map(failure)));
}
