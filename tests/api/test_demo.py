"""``/demo`` and ``/demo/config.json``: the built demo page and its dev publishable key, in dev mode only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.api.app import create_app
from services.api.settings import ApiSettings
from tests.api.conftest import http_client


@pytest.fixture
def built_page(tmp_path: Path) -> Path:
    """A stand-in for ``web/dist``: a page and one asset."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<html>demo page</html>")
    (tmp_path / "assets" / "app.js").write_text("console.log('demo')")
    return tmp_path


async def _app_client(settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app), http_client(app, None) as client:
        yield client


@pytest.fixture
async def demo_client(api_settings: ApiSettings, built_page: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The API in dev mode with a demo flow, a dev publishable key and a built page."""
    settings = api_settings.model_copy(
        update={"dev_publishable_key": "pk_dev_demo", "dev_demo_flow_id": "flow-1", "demo_dir": built_page}
    )
    async for client in _app_client(settings):
        yield client


async def test_config_json_gives_the_api_url_flow_and_publishable_key(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.get("/demo/config.json")
    assert response.status_code == 200
    assert response.json() == {"apiUrl": "http://api.test", "flowId": "flow-1", "publishableKey": "pk_dev_demo"}


async def test_the_built_page_and_its_assets_are_served(demo_client: httpx.AsyncClient) -> None:
    for path in ("/demo", "/demo/"):
        page = await demo_client.get(path)
        assert (
            page.status_code == 200
            and "demo page" in page.text
            and page.headers["content-type"].startswith("text/html")
        )
    asset = await demo_client.get("/demo/assets/app.js")
    assert asset.status_code == 200 and "console.log" in asset.text
    for missing in (
        "/demo/assets/none.js",
        "/demo/..%2f..%2fetc/passwd",
        "/demo/%2e%2e/%2e%2e/etc/passwd",
        "/demo/a%00b",
    ):
        response = await demo_client.get(missing)
        assert response.status_code == 404 and "no file" in response.json()["error"], missing


async def test_an_unbuilt_page_or_no_dev_key_is_404_with_a_sentence(api_settings: ApiSettings, tmp_path: Path) -> None:
    async for client in _app_client(api_settings.model_copy(update={"demo_dir": tmp_path})):
        page = await client.get("/demo")
        assert page.status_code == 404 and "the demo page is not built" in page.json()["error"]
        config = await client.get("/demo/config.json")
        assert config.status_code == 404 and "make dev creates both" in config.json()["error"]


async def test_nothing_is_served_outside_dev_mode(api_settings: ApiSettings, built_page: Path) -> None:
    settings = api_settings.model_copy(
        update={
            "dev_mode": False,
            "dev_publishable_key": "pk_dev_demo",
            "dev_demo_flow_id": "flow-1",
            "demo_dir": built_page,
        }
    )
    async for client in _app_client(settings):
        for path in ("/demo", "/demo/config.json", "/demo/assets/app.js"):
            response = await client.get(path)
            assert response.status_code == 404 and "only in dev mode" in response.json()["error"], path
