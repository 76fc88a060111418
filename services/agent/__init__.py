"""The agent service: a livekit-agents worker that runs the readiness protocol for each dispatched job."""
