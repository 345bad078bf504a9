"""Command-line tools over the same settings and store as the service."""
