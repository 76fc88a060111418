"""Scrape every process of a running stack at a fixed interval, like Prometheus would, into :class:`Scrapes`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devstack.dashboard.promql import Labels, Scrapes


def parse(text: str, instance: str) -> dict[tuple[str, Labels], float]:
    """One target's exposition as ``{(sample name, labels with instance): value}``."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted({**sample.labels, "instance": instance}.items()))
            samples[(sample.name, labels)] = float(sample.value)
    return samples


async def scrape_round(http: httpx.AsyncClient, targets: Mapping[str, str]) -> dict[tuple[str, Labels], float]:
    """Every target once, at the same time; a target that does not answer is left out of this round."""
    answers = await asyncio.gather(*(http.get(url) for url in targets.values()), return_exceptions=True)
    samples: dict[tuple[str, Labels], float] = {}
    for instance, answer in zip(targets, answers, strict=True):
        if isinstance(answer, httpx.Response) and answer.status_code == 200:
            samples |= parse(answer.text, instance)
    return samples


async def scrape_until(targets: Mapping[str, str], every_s: float, stop: asyncio.Event) -> Scrapes:
    """Scrape all ``targets`` every ``every_s`` until ``stop`` is set (then once more)."""
    scrapes = Scrapes()
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5.0) as http:  # a busy consumer answers late rather than not at all
        while True:
            last = stop.is_set()
            scrapes.add(time.monotonic() - started, await scrape_round(http, targets))
            if last:
                return scrapes
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            except TimeoutError:
                continue


def save(scrapes: Scrapes, path: Path) -> None:
    """Write the rounds as JSON (to render again without running the demo)."""
    rounds = [
        [[name, [list(pair) for pair in labels], value] for (name, labels), value in samples.items()]
        for samples in scrapes.rounds
    ]
    path.write_text(json.dumps({"times": scrapes.times, "rounds": rounds}))


def load(path: Path) -> Scrapes:
    """Read what :func:`save` wrote."""
    data = json.loads(path.read_text())
    scrapes = Scrapes()
    for at, samples in zip(data["times"], data["rounds"], strict=True):
        scrapes.add(at, {(name, tuple((k, v) for k, v in labels)): value for name, labels, value in samples})
    return scrapes
