"""Headless Chromium for the demo page: is it there (skip, or fail under CI=true), and drive it (web/scripts)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
DIST = WEB / "dist"
DRIVER = WEB / "scripts" / "drive-demo.mjs"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))


def missing_piece() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does it as root)"
    if shutil.which("node") is None:
        return "node is not installed (needed for playwright-core and the web build)"
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        return "web/node_modules has no playwright-core (make web runs npm ci)"
    if not (DIST / "index.html").exists():
        return "web/dist is not built (make web)"
    return None


def require_browser() -> None:
    """Skip with the reason when the browser test cannot run; under CI=true fail instead (no silent skip in CI)."""
    reason = missing_piece()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


async def drive_demo(url: str, screenshot: Path, timeout_s: float) -> dict[str, Any]:
    """Open ``url``, click Start, wait for ready/failed; return what the page showed (web/scripts/drive-demo.mjs)."""
    argv = ["node", str(DRIVER), url, "--screenshot", str(screenshot), "--timeout-ms", str(int(timeout_s * 1000))]
    argv += ["--chromium", str(CHROMIUM)]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=WEB, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s + 30)  # + Chromium's start
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the browser driver did not finish within {timeout_s + 30:.0f}s") from None
    lines = out.decode().strip().splitlines()
    assert lines, f"the browser driver printed nothing (code {proc.returncode}): {err.decode()[-2000:]}"
    shown: dict[str, Any] = json.loads(lines[-1])
    return shown
