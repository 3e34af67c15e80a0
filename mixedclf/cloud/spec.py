"""`mixedclf-deploy.toml`: one versioned spec of a Runpod deployment (pydantic, unknown keys refused).

The same file is deployed (cloud.rest), run locally (cloud.local), rendered into images (cloud.render) and
priced. Limits are Runpod's own (REST v2 OpenAPI of docs commit a900806, 2026-08-20; docs
serverless/endpoints/endpoint-configurations.mdx); docs/runpod.md keeps the dated table.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mixedclf.errors import InputError, validation_line

SPEC_VERSION = 1
DEFAULT_SPEC = Path("mixedclf-deploy.toml")

# Serverless GPU pool ids (v2 `gpu.pools`; the same ids GraphQL `gpuIds` takes).
GPU_POOLS = {
    "ADA_24": "RTX 4090", "ADA_32_PRO": "RTX 5090", "ADA_48_PRO": "L40 / L40S / 6000 Ada", "ADA_80_PRO": "H100",
    "AMPERE_16": "A4000 / A4500 / RTX 4000 Ada", "AMPERE_24": "A5000 / L4 / 3090", "AMPERE_48": "A40 / A6000",
    "AMPERE_80": "A100", "HOPPER_141": "H200", "BLACKWELL_96": "RTX PRO 6000", "BLACKWELL_180": "B200",
}
# CPU flavors and their GB of RAM per vCPU: an instance id is flavor-vcpu-ram.
CPU_FLAVORS = {"cpu3g": 4, "cpu3c": 2, "cpu5c": 2}
CPU_VCPUS = (1, 2, 4, 8)
_INSTANCE = re.compile(r"^(cpu3g|cpu3c|cpu5c)-(\d+)-(\d+)$")
ROLES = ("pre", "infer", "post", "all", "orchestrator")
MAX_IDLE_S = 3600
MIN_EXECUTION_S, MAX_EXECUTION_S = 5, 7 * 24 * 3600


def parse_instance(instance: str) -> tuple[str, int, int]:
    """`cpu3c-2-4` -> ("cpu3c", 2, 4); ValueError naming the known ids otherwise."""
    match = _INSTANCE.match(instance)
    known = ", ".join(f"{f}-{v}-{v * r}" for f, r in CPU_FLAVORS.items() for v in CPU_VCPUS)
    if not match:
        raise ValueError(f"unknown CPU instance {instance!r} (known: {known})")
    flavor, vcpu, ram = match.group(1), int(match.group(2)), int(match.group(3))
    if vcpu not in CPU_VCPUS or ram != vcpu * CPU_FLAVORS[flavor]:
        raise ValueError(f"unknown CPU instance {instance!r} (known: {known})")
    return flavor, vcpu, ram


class Workers(BaseModel):
    model_config = ConfigDict(frozen=True)
    min: int
    max: int

    def __str__(self) -> str:
        return f"{self.min}:{self.max}"


class EndpointSpec(BaseModel):
    """One Runpod serverless endpoint."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["cpu", "gpu"]
    instance: str | None = Field(None, description="CPU instance id, e.g. cpu3c-2-4 (kind = cpu)")
    gpu_pool: str | None = Field(None, description="GPU pool id, e.g. ADA_24 (kind = gpu)")
    gpu_count: int = Field(1, ge=1, le=8)
    min_cuda_version: str | None = Field(None, pattern=r"^\d+\.\d+$")
    workers: str = Field(..., description='"min:max"')
    idle_timeout_s: int = Field(5, ge=1, le=MAX_IDLE_S)
    execution_timeout_s: int = Field(600, ge=MIN_EXECUTION_S, le=MAX_EXECUTION_S)
    flashboot: bool = True
    scaler: Literal["QUEUE_DELAY", "REQUEST_COUNT"] | None = None
    scaler_value: int = Field(4, ge=1)
    jobs_per_worker: int = Field(1, ge=1, le=1024)
    image: str
    disk_gb: int | None = Field(None, ge=1)

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: str) -> str:
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", value)
        if not match:
            raise ValueError(f'workers must be "min:max", e.g. "0:3" (got {value!r})')
        low, high = int(match.group(1)), int(match.group(2))
        if high < 1 or low > high:
            raise ValueError(f"workers {value!r}: need 0 <= min <= max and max >= 1")
        return f"{low}:{high}"

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"image must be an image reference without spaces (got {value!r})")
        name = value.rsplit("/", 1)[-1]
        if "@" not in name and (":" not in name or name.endswith(":latest")):
            raise ValueError(f"image {value!r} needs a pinned tag or digest (not :latest): a worker must run "
                             "what was tested")
        return value

    @model_validator(mode="after")
    def _compute(self) -> EndpointSpec:
        if self.kind == "cpu":
            if not self.instance:
                raise ValueError("a cpu endpoint needs instance = \"cpu3c-2-4\" (or another CPU instance id)")
            if self.gpu_pool:
                raise ValueError("a cpu endpoint takes instance, not gpu_pool")
            _, vcpu, _ = parse_instance(self.instance)
            limit = vcpu * (15 if self.instance.startswith("cpu5c") else 10)
            if self.disk_gb is not None and self.disk_gb > limit:
                raise ValueError(f"disk_gb {self.disk_gb} is over {self.instance}'s container disk limit ({limit} GB)")
        else:
            if not self.gpu_pool:
                raise ValueError('a gpu endpoint needs gpu_pool = "ADA_24" (or another pool)')
            if self.instance:
                raise ValueError("a gpu endpoint takes gpu_pool, not instance")
            if self.gpu_pool not in GPU_POOLS:
                raise ValueError(f"unknown GPU pool {self.gpu_pool!r} (known: {', '.join(sorted(GPU_POOLS))})")
        return self

    @property
    def worker_range(self) -> Workers:
        low, high = self.workers.split(":")
        return Workers(min=int(low), max=int(high))

    @property
    def vcpus(self) -> int | None:
        return parse_instance(self.instance)[1] if self.instance else None


class ModelSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "default"
    precision: str = "auto"


class DeploySpec(BaseModel):
    """The whole deployment: topology, orchestrator, model and one EndpointSpec per role."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    app: str = Field("mixedclf", pattern=r"^[a-z0-9][a-z0-9-]{0,40}$",
                     description="prefix of every endpoint's name on Runpod")
    topology: Literal["split", "single"] = "split"
    orchestrator: Literal["lb", "client"] = "lb"
    model: ModelSection = ModelSection()
    endpoints: dict[str, EndpointSpec]

    @model_validator(mode="after")
    def _roles(self) -> DeploySpec:
        stages = ["pre", "infer", "post"] if self.topology == "split" else ["all"]
        need = stages + (["orchestrator"] if self.orchestrator == "lb" else [])
        missing = [r for r in need if r not in self.endpoints]
        extra = [r for r in self.endpoints if r not in need]
        if missing:
            raise ValueError(f"topology {self.topology!r} with orchestrator {self.orchestrator!r} needs "
                             f"[endpoints.{missing[0]}]" + (f" (and {', '.join(missing[1:])})" if missing[1:] else ""))
        if extra:
            raise ValueError(f"[endpoints.{extra[0]}] is not part of topology {self.topology!r} with orchestrator "
                             f"{self.orchestrator!r} (its endpoints: {', '.join(need)})")
        if "orchestrator" in self.endpoints:
            orch = self.endpoints["orchestrator"]
            if orch.scaler not in (None, "REQUEST_COUNT"):
                raise ValueError("endpoints.orchestrator: a load-balanced endpoint scales on REQUEST_COUNT only")
        return self

    def scaler(self, role: str) -> str:
        """QUEUE_DELAY for queue endpoints unless set; a load-balanced endpoint scales on REQUEST_COUNT."""
        return self.endpoints[role].scaler or ("REQUEST_COUNT" if role == "orchestrator" else "QUEUE_DELAY")

    def endpoint_name(self, role: str) -> str:
        return f"{self.app}-{role}"

    def stage_roles(self) -> list[str]:
        return ["pre", "infer", "post"] if self.topology == "split" else ["all"]


def load_spec(path: Path) -> DeploySpec:
    """The spec at `path`, or an InputError (exit 2) in one line naming the file and the key."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such deploy spec", hint="mixedclf deploy init writes one") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
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
