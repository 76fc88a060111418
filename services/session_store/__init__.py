"""The session store: the only writer of session status, in PostgreSQL."""
