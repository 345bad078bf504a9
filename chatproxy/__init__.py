"""Persistent, separated chats in front of the OpenAI chat API."""
