"""The only code the services share: event models, stream names and the session status machine."""
