// What the page knows, shared by its modules: the API key, the open chat and the chat list.

export const KEY_STORAGE = "chatproxy.apiKey";

export const state = {
  key: localStorage.getItem(KEY_STORAGE) || "",
  chatId: "",
  isNew: true,
  chats: [], // as GET /chats lists them: {id, title, updated, messages}
  nextBefore: null,
  nextBeforeId: null,
  firstMessageId: null, // the oldest message shown, for paging back
  oldest: null, // the oldest message of the path read (as the API gave it)
  sending: false,
};
