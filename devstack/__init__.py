"""Local development stack: real Redis and PostgreSQL, the LiveKit simulator and the four services."""
