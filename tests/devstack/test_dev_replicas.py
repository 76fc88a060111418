"""``DEV_REPLICAS=N`` makes ``python -m devstack`` run N processes of each stream consumer."""

from __future__ import annotations

from devstack.dev import service_labels


def test_dev_replicas_multiplies_only_the_consumers() -> None:
    labels = [label for _, label in service_labels({"DEV_REPLICAS": "2"})]
    assert labels == [
        "session-store-1", "session-store-2", "dispatcher-1", "dispatcher-2", "webhooks-1", "webhooks-2", "agent", "api"
    ]  # fmt: skip
    assert [label for _, label in service_labels({})] == ["session-store", "dispatcher", "webhooks", "agent", "api"]
