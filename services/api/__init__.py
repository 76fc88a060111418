"""The HTTP API for frontends and ops."""
