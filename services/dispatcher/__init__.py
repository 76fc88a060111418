"""The dispatcher: the only service that calls the LiveKit server API."""
