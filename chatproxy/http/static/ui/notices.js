// What the page tells the user: errors in plain words (the alert) and the status line.

import { ApiError } from "./api.js";
import { $ } from "./dom.js";
import { state } from "./state.js";

function waitWords(error) {
  const seconds = error.retryAfter;
  if (seconds === null || seconds === undefined) return "Try again in a moment.";
  if (seconds <= 1) return "Try again in a second.";
  if (seconds <= 90) return `Try again in ${seconds} seconds.`;
  const minutes = Math.ceil(seconds / 60);
  return `Try again in ${minutes} minutes.`;
}

const ERROR_WORDS = {
  network: () => "Could not reach the server. Check your connection and try again.",
  unauthorized: () =>
    state.key
      ? "The server did not accept your API key. Check it under “API key”."
      : "This server needs an API key. Paste yours under “API key”.",
  admin_only: () => "Only an admin key may do this.",
  rate_limited: (e) => `Too many requests: you reached the server's rate limit. ${waitWords(e)}`,
  token_budget_exhausted: (e) => `This key has used its token budget for today. ${waitWords(e)}`,
  chat_busy: () => "This chat is still answering an earlier message. Try again in a moment.",
  turn_lease_lost: () => "The reply took too long and was not saved. Send your message again.",
  payload_too_large: () => "This message is too large for the server. Shorten it and try again.",
  invalid_chat_id: () => "This chat id is not valid. Start a new chat.",
  upstream_error: (e) => `The model provider is unavailable right now. ${waitWords(e)}`,
  upstream_bad_response: () => "The model provider sent an answer the server could not read.",
  upstream_rate_limited: (e) => `The model provider is overloaded right now. ${waitWords(e)}`,
  upstream_timeout: () => "The model provider did not answer in time. Try again in a moment.",
  upstream_auth: () =>
    "The model provider refused the server's own credentials. Tell the server's operator.",
  upstream_rejected: (e) => `The model provider refused this message: ${e.message}`,
  store_unavailable: () => "The chat store is unavailable right now. Try again in a moment.",
  reply_cut: () => "The reply broke off before it was finished and was not saved. Send again.",
};

function describe(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}`;
  const words = ERROR_WORDS[error.code];
  if (words) return words(error);
  const status = error.status;
  if (status === 401) return ERROR_WORDS.unauthorized(error);
  if (status === 413) return ERROR_WORDS.payload_too_large(error);
  if (status === 429) return ERROR_WORDS.rate_limited(error);
  if (status === 502 || status === 503 || status === 504) return ERROR_WORDS.upstream_error(error);
  if (status === 400 || status === 422) return `The server refused this: ${error.message}`;
  if (!status) return `Something went wrong: ${error.message}`;
  return `Something went wrong (HTTP ${status}). ${error.message}`.trim();
}

// A turn or a step to a version refused because a message it needs is gone; the chat was read
// again (turns.js, conversation.js).
export const GONE_WORDS =
  "A message this needs is no longer in the chat: a chat keeps only its newest messages, and " +
  "another client may have removed some. The chat was read again: try again from what it shows.";

export function showError(error) {
  $("error-text").textContent = typeof error === "string" ? error : describe(error);
  $("error").hidden = false;
}

export function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

export function setStatus(text) {
  $("status").textContent = text;
}
