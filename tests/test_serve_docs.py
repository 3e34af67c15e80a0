"""`mixedclf serve`'s /docs works offline: Swagger UI's files come from an installed package, not a CDN."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

pytest.importorskip("fastapi_offline")

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


@pytest.fixture(scope="module")
def app(tiny_model):
    from mixedclf.serve.app import create_app
    from mixedclf.serve.settings import ServeSettings

    return create_app(ServeSettings(model=str(tiny_model), device="cpu", cpu_workers=1))


def asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=['"]([^'"]+\.(?:js|css))['"]""", html)


def test_docs_page_loads_its_assets_from_the_app_itself(app):
    from fastapi.testclient import TestClient

    client = TestClient(app)  # no lifespan: the docs need no model
    page = client.get("/docs")
    assert page.status_code == 200
    urls = asset_urls(page.text)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls) and any(u.endswith(".css") for u in urls), urls
    for url in urls:
        assert url.startswith("/"), f"{url} is fetched from another host"
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 10_000, url
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and all(u.startswith("/") for u in asset_urls(redoc.text))


@pytest.mark.slow
def test_docs_render_the_operations_in_a_headless_browser(app, tmp_path):
    chromium = next((p for p in CHROMIUM_PATHS if shutil.which(p)), None)
    if chromium is None:
        pytest.skip(f"no Chromium at {', '.join(CHROMIUM_PATHS)}: the browser check of /docs needs one")
    from serve_helpers import serve_in_thread

    with serve_in_thread(app) as server:
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom",
             f"{server.url}/docs"],
            capture_output=True, text=True, timeout=120,
        ).stdout
    # Swagger UI writes one block per operation, with its path, once it has fetched and parsed /openapi.json.
    assert 'class="swagger-ui' in dom, dom[:2000]
    assert 'data-path="/classify/batch"' in dom, dom[:2000]
