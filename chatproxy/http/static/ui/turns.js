// Sending a turn, with the reply streaming in (shown as Markdown as it grows): a new message at
// the end of the path on screen, an edit of an earlier message (a new branch from the message
// before it), or another reply to a message. The new branch replaces what was below on screen.

import { ApiError, chatPath, request, serverEvents } from "./api.js";
import { focusControl, openEditor, showControls } from "./branches.js";
import { noteTurn } from "./chats.js";
import {
  dropGone,
  openChat,
  readStarts,
  setStored,
  showChatHeader,
  shownItem,
  shownLeaf,
  startsPath,
  updateEmpty,
} from "./conversation.js";
import { $ } from "./dom.js";
import { messageElement, messageOf, setMessage, setMeta, setText, textOf } from "./messages.js";
import { GONE_WORDS, clearError, setStatus, showError } from "./notices.js";
import { state } from "./state.js";

const END_SLACK = 16; // pixels from the end of the list that still count as at its end

function setSending(sending) {
  state.sending = sending;
  $("send").disabled = sending;
  $("messages").setAttribute("aria-busy", String(sending));
  showControls($("messages"));
}

// Make the change `change` to the list; a view at its end (where a turn starts it) stays there,
// so a reply is followed as it grows, and one scrolled up to read is left where it is.
function keepEnd(scroller, change) {
  const atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= END_SLACK;
  change();
  if (atEnd) scroller.scrollTop = scroller.scrollHeight;
}

// Read a streamed turn's events; show the text as it grows, at most once a frame. Return the
// stored reply the last event carries.
async function readReply(response, reply, scroller) {
  let text = "";
  let frame = 0;
  const show = () => {
    frame = 0;
    keepEnd(scroller, () => setText(reply, text));
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

// Show `shown` (the user's new message if any, then the reply) in place of `from` and all
// below it (at the end if null), and post `body`; the control `focus` of the first one shown
// takes the focus meanwhile. Once the reply is stored and the chat's first messages are read,
// `settle(reply)` gives what is shown its ids and versions, what trimming dropped is marked
// (dropGone), and the controls come back. Return how many messages the chat holds now (what
// trimming left; null if that could not be read); on failure put back what was shown before,
// report the error and return false. A turn refused with 404 goes under a message the chat no
// longer holds (MAX_CHAT_MESSAGES dropped it, after it was shown here or by another client's
// turns, or another client removed it): the chat is read again, so that what is shown and
// offered is what it holds, and the page says so.
async function runTurn(body, shown, from, focus, settle) {
  const id = state.chatId;
  const list = $("messages");
  const reply = shown[shown.length - 1];
  reply.classList.add("streaming");
  const removed = [];
  for (let node = from; node; node = node.nextElementSibling) removed.push(node);
  list.append(...shown); // appending moves nothing out: `removed` are taken out next
  removed.forEach((node) => node.remove());
  updateEmpty();
  clearError();
  setSending(true);
  if (focus) focusControl(shown[0], focus);
  const scroller = list.parentElement;
  scroller.scrollTop = scroller.scrollHeight; // at the end, with the controls shown meanwhile
  setStatus("The assistant is replying…");
  try {
    const response = await request("POST", chatPath(id, "chat"), { ...body, stream: true }, {
      Accept: "text/event-stream",
    });
    const finished = await readReply(response, reply, scroller);
    // Stored: what trimming left of the chat is known before any control acts again.
    const left = await readStarts(id);
    keepEnd(scroller, () => {
      setText(reply, textOf(finished.content));
      reply.classList.remove("streaming");
      setMeta(reply, finished);
      settle(finished);
      if (id === state.chatId) dropGone(left && left.children);
      setSending(false);
    });
    if (id === state.chatId) {
      // Stored now: unless the user opened another chat meanwhile, which stays as it is.
      state.isNew = false;
      setStored(true);
      // The chat was opened again meanwhile, its history read before this turn was stored:
      // read it again, so that the turn is shown and a next message goes below it.
      if (!reply.isConnected) openChat(id, false);
    }
    setStatus("");
    return left ? left.messages : null;
  } catch (error) {
    // Nothing is stored when a turn fails: the view goes back to what it was (unless another
    // chat is open by now).
    if (reply.isConnected) {
      shown.forEach((node) => node.remove());
      list.append(...removed);
      updateEmpty();
    }
    setStatus("");
    if (error.status === 404 && id === state.chatId) {
      await openChat(id, false);
      if ($("error").hidden) showError(GONE_WORDS);
    } else {
      showError(error);
    }
    return false;
  } finally {
    setSending(false);
  }
}

// The user's new message and the empty reply that will stream in below it.
function pair(text, parent) {
  const now = Date.now() / 1000;
  const mine = messageElement({ role: "user", content: text, created_at: now, parent });
  return [mine, messageElement({ role: "assistant", content: "" })];
}

// Both are stored: each gets its id and its versions (`siblings`, the user message's without
// its own id yet).
function settle(mine, reply, finished, siblings) {
  const userId = finished.parent;
  setMessage(mine, { ...messageOf(mine), id: userId, siblings: [...siblings, userId] });
  setMessage(reply, { ...finished, siblings: [finished.id] });
}

// Send a new message below the newest one on screen (so what the user sees is what goes on).
export async function send(text) {
  const id = state.chatId;
  const parent = shownLeaf();
  const [mine, reply] = pair(text, parent === undefined ? null : parent);
  const body = parent === undefined ? { content: text } : { content: text, parent };
  const held = await runTurn(body, [mine, reply], null, null, (stored) =>
    settle(mine, reply, stored, []),
  );
  if (held === false) {
    if (!$("message").value) $("message").value = text; // given back to send again
    return;
  }
  noteTurn(id, text, 2, held);
  showChatHeader();
}

// Save the editor's text as another version of a user message: a new message beside it, whose
// reply streams in; the branch below the old version stays, a step away.
export async function saveEdit(item, text) {
  const id = state.chatId;
  const old = messageOf(item);
  // The path's first message gets a sibling with no parent (its own parent may be one that
  // MAX_CHAT_MESSAGES dropped, which the chat no longer holds).
  const parent = startsPath(item) ? null : old.parent;
  const [mine, reply] = pair(text, parent);
  const body = { content: text, parent };
  const held = await runTurn(body, [mine, reply], item, "edit", (stored) =>
    settle(mine, reply, stored, old.siblings || [old.id]),
  );
  if (held === false) {
    // Back as it was, the text kept to save again (on the message read again, if it was); when
    // the chat no longer holds the message, in the message box, to send rather than be lost.
    const again = item.isConnected ? item : shownItem(old.id);
    if (again) openEditor(again, text);
    else if (id === state.chatId && !$("message").value) {
      $("message").value = text;
      $("message").focus();
      setStatus("The message you edited is gone: your text is in the message box, to send.");
    }
    return;
  }
  noteTurn(id, old.parent === null ? text : "", 2, held);
}

// Ask for another reply to the user message a reply answers; it goes beside the old one.
export async function regenerate(item) {
  const id = state.chatId;
  const old = messageOf(item);
  const reply = messageElement({ role: "assistant", content: "", parent: old.parent });
  const siblings = old.siblings || [old.id];
  const held = await runTurn({ parent: old.parent }, [reply], item, "regenerate", (stored) =>
    setMessage(reply, { ...stored, siblings: [...siblings, stored.id] }),
  );
  if (held === false) {
    if (item.isConnected) focusControl(item, "regenerate");
    else $("message").focus(); // the chat was read again without it
    return;
  }
  noteTurn(id, "", 1, held);
}
