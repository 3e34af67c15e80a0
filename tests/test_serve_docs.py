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


def schema_refs(schema: dict) -> list[str]:
    """The component names a request or response schema points at (directly or through anyOf/oneOf)."""
    if "$ref" in schema:
        return [schema["$ref"].rsplit("/", 1)[1]]
    return [name for part in schema.get("anyOf", []) + schema.get("oneOf", []) for name in schema_refs(part)]


def test_docs_group_routes_by_tag_and_show_real_examples(app):
    from fastapi.testclient import TestClient

    spec = TestClient(app).get("/openapi.json").json()
    declared = [t["name"] for t in spec["tags"]]
    assert declared == ["classify", "workers", "async jobs", "operations"]
    components = spec["components"]["schemas"]
    shown = set()
    for path, operations in spec["paths"].items():
        for verb, op in operations.items():
            assert op.get("tags") and set(op["tags"]) <= set(declared), (verb, path, op.get("tags"))
            bodies = [op["requestBody"]] if "requestBody" in op else []
            bodies += [op["responses"]["200"]] if "200" in op["responses"] else []
            for body in bodies:
                for media in body.get("content", {}).values():
                    shown.update(schema_refs(media.get("schema", {})))
    assert {"TextIn", "TextsIn", "CleanedIn", "RunpodTextIn", "RunpodCleanedIn", "ClassifyOut", "BatchOut",
            "CpuWorkerOut", "GpuWorkerOut", "RunpodOut", "JobAcceptedOut", "JobStatusOut"} <= shown, shown
    # Swagger UI shows a schema's first example instead of placeholders ("string", "additionalProp1").
    missing = sorted(name for name in shown if not components[name].get("examples"))
    assert missing == [], missing
    tags = {op["tags"][0] for path, ops in spec["paths"].items() for op in ops.values() if path.startswith("/classify")}
    assert tags == {"classify"}
    assert spec["paths"]["/ping"]["get"]["tags"] == ["operations"]
    errors = spec["paths"]["/classify"]["post"]["responses"]
    for code in ("422", "503", "504"):
        assert errors[code]["content"]["application/json"]["example"]["detail"], code


def test_every_example_is_valid_input_or_output_of_its_model():
    import inspect

    from pydantic import BaseModel

    from mixedclf.serve import schemas

    models = [c for c in vars(schemas).values()
              if inspect.isclass(c) and issubclass(c, BaseModel) and c.__module__ == schemas.__name__]
    assert len(models) >= 15
    for model in models:
        examples = model.model_json_schema().get("examples")
        assert examples, model.__name__
        for value in examples:
            model.model_validate(value)
