"""``/demo``: the browser demo page (built into ``<repo>/web/dist``) and ``/demo/config.json``, in dev mode only.

The page gets the dev stack's publishable key and demo flow from config.json: never a secret key.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from services.api.dependencies import SettingsDep
from services.api.errors import NotFoundError
from services.api.settings import ApiSettings

router = APIRouter(include_in_schema=False)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DEMO_DIR = REPO_ROOT / "web" / "dist"


def _dev_only(settings: ApiSettings) -> None:
    if not settings.dev_mode:
        raise NotFoundError("the demo page is served only in dev mode (DEV_MODE=true, as make dev sets it)")


@router.get("/demo/config.json")
async def demo_config(request: Request, settings: SettingsDep) -> dict[str, str]:
    """What the demo page needs: the API's URL, the demo flow and the dev publishable key."""
    _dev_only(settings)
    if not settings.dev_publishable_key or not settings.dev_demo_flow_id:
        raise NotFoundError(
            "no demo flow or dev publishable key is configured: make dev creates both "
            "(or set DEV_PUBLISHABLE_KEY and DEV_DEMO_FLOW_ID)"
        )
    return {
        "apiUrl": str(request.base_url).rstrip("/"),
        "flowId": settings.dev_demo_flow_id,
        "publishableKey": settings.dev_publishable_key,
    }


@router.get("/demo")
@router.get("/demo/{path:path}")
async def demo_page(settings: SettingsDep, path: str = "") -> FileResponse:
    """The built demo page and its assets; ``index.html`` for the page itself."""
    _dev_only(settings)
    root = (settings.demo_dir or DEFAULT_DEMO_DIR).resolve()
    if not (root / "index.html").is_file():
        raise NotFoundError(f"the demo page is not built: run 'npm ci && npm run build' in web/ (looked in {root})")
    if "\x00" in path:  # the file system refuses it (ValueError, not "no such file")
        raise NotFoundError(f"no file {path!r} in the demo page")
    target = (root / (path or "index.html")).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise NotFoundError(f"no file {path!r} in the demo page")
    return FileResponse(target)
