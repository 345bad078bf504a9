"""The HTTP edge: routes, handlers, /v1, the API docs and the chat page."""
