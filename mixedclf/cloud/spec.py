"""The deploy spec on disk: reading `mixedclf-deploy.toml` (its model is costs.deployment.DeploySpec), the state
file beside it, and the original design's spec that `mixedclf deploy init` writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from mixedclf.costs.deployment import SPEC_VERSION, DeploySpec
from mixedclf.errors import InputError, validation_line

DEFAULT_SPEC = Path("mixedclf-deploy.toml")


def load_spec(path: Path) -> DeploySpec:
    """The spec at `path`, or an InputError (exit 2) in one line naming the file and the key."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such deploy spec", hint="mixedclf deploy init writes one") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a deploy spec") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the deploy spec: {exc.strerror or exc}") from None
    if data.get("version") != SPEC_VERSION:
        raise InputError(f"{path}: version = {SPEC_VERSION} expected (got {data.get('version')!r})")
    try:
        return DeploySpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {validation_line(exc)}") from None


def state_path(spec_path: Path) -> Path:
    """`mixedclf-deploy.toml` -> `mixedclf-deploy.state.json`, beside the spec."""
    return spec_path.with_name(spec_path.stem + ".state.json")


# The original design (README of flash-examples 01_getting_started/03_mixed_workers): idle 180 / 300 / 3 s,
# workers 0:10 / 0:3 / 0:10, an always-on cpu3c-1-2 orchestrator with 1:3 workers.
INIT_TEMPLATE = """\
# mixedclf deployment on Runpod serverless: one file that is deployed (mixedclf deploy plan|apply|verify|destroy),
# run locally (mixedclf deploy local), rendered into images (mixedclf deploy render) and priced.
# The original design: CPU preprocess -> GPU inference -> CPU postprocess queue endpoints behind an always-on
# load-balanced /classify endpoint. See docs/runpod.md.
version = 1
app = "mixedclf"          # every endpoint is named <app>-<role> on Runpod
topology = "split"        # split: pre, infer, post endpoints | single: one endpoint [endpoints.all] runs all three
orchestrator = "lb"       # lb: an always-on load-balanced endpoint serves /classify | client: the caller drives stages

[model]
name = "default"          # a model name or folder baked into the images
precision = "auto"

[endpoints.pre]           # clean, count, tokenize: a CPU queue endpoint
kind = "cpu"
instance = "cpu3c-2-4"    # {cpu3g|cpu3c|cpu5c}-{vcpu}-{ram}; REST v2 takes 2, 4 or 8 vCPUs
workers = "0:10"          # "min:max": min > 0 keeps workers (and their bill) running
idle_timeout_s = 180      # billed seconds a worker waits for the next job before it stops
execution_timeout_s = 600 # a job running longer fails
flashboot = true
jobs_per_worker = 1
image = "ghcr.io/your-org/mixedclf-cpu:0.1.0"   # build it: mixedclf deploy render mixedclf-deploy.toml --out docker/

[endpoints.infer]         # the model: a GPU queue endpoint; concurrent jobs share device batches
kind = "gpu"
gpu_pool = "ADA_24"       # RTX 4090; see docs/runpod.md for the pools
gpu_count = 1
workers = "0:3"
idle_timeout_s = 300
execution_timeout_s = 600
flashboot = true
jobs_per_worker = 8
image = "ghcr.io/your-org/mixedclf-gpu:0.1.0"

[endpoints.post]          # labels, scores, confidence buckets: a CPU queue endpoint
kind = "cpu"
instance = "cpu3c-2-4"
workers = "0:10"
idle_timeout_s = 3
execution_timeout_s = 600
flashboot = true
jobs_per_worker = 1
image = "ghcr.io/your-org/mixedclf-cpu:0.1.0"

[endpoints.orchestrator]  # `mixedclf serve` as a load-balanced endpoint: /classify, /ping; calls the stages
kind = "cpu"
instance = "cpu3c-1-2"    # 1 vCPU: REST v2 cannot say it, so this one endpoint is sent through GraphQL
workers = "1:3"           # one worker always on, as the original design
idle_timeout_s = 5
execution_timeout_s = 600
flashboot = true
image = "ghcr.io/your-org/mixedclf-cpu:0.1.0"
"""


def write_init(path: Path) -> None:
    """Write the original design's spec at `path`; refuse to overwrite (exit 2, the file untouched)."""
    try:
        with path.open("x") as handle:
            handle.write(INIT_TEMPLATE)
    except FileExistsError:
        raise InputError(f"{path} already exists: not overwritten", hint="remove it or name another file") from None
