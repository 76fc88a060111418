"""``python -m devstack.demo``: N simulated frontends against the stack, and a report of what they saw.

Each frontend requests a session over HTTP, joins its room with the returned token, waits for
``agent.ready`` on the ``agent-status`` data topic (SSE as a second witness) and reads the stage times.
"""

from devstack.demo.runner import DemoConfig, run_demo
from devstack.demo.stats import DemoSummary

__all__ = ["DemoConfig", "DemoSummary", "run_demo"]
