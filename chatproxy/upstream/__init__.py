"""The one model client: calls, retries, stream parsing, and the offline dev upstream."""
