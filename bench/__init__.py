"""The benchmark: the event-driven API against a ceiling handler and the polling design it replaces (``make bench``)."""
