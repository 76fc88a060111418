"""The four agentready services; each runs as ``python -m services.<name>``."""
