"""Serving: the batching engine, the HTTP API (rapgpt's own and OpenAI's) and the browser front end."""
