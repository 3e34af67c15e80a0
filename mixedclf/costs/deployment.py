"""`mixedclf-deploy.toml`: one versioned spec of a Runpod deployment (pydantic, unknown keys refused), and its TOML.

The same file is written by `mixedclf plan` (costs.deploy_plan), priced (`estimate --deploy`), deployed
(cloud.rest), run locally (cloud.local) and rendered into images (cloud.render); cloud.spec reads it from disk.
Limits are Runpod's own (REST v2 OpenAPI of docs commit a900806, 2026-08-20; docs
serverless/endpoints/endpoint-configurations.mdx); docs/runpod.md keeps the dated table.

Pure module: no torch, no pools.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mixedclf.costs.pricing import CostInputError

DEPLOY_FILE_NAME = "mixedclf-deploy.toml"

SPEC_VERSION = 1

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
    instance: str | None = Field(default=None, description="CPU instance id, e.g. cpu3c-2-4 (kind = cpu)")
    gpu_pool: str | None = Field(default=None, description="GPU pool id, e.g. ADA_24 (kind = gpu)")
    gpu_count: int = Field(default=1, ge=1, le=8)
    min_cuda_version: str | None = Field(default=None, pattern=r"^\d+\.\d+$")
    workers: str = Field(..., description='"min:max"')
    idle_timeout_s: int = Field(default=5, ge=1, le=MAX_IDLE_S)
    execution_timeout_s: int = Field(default=600, ge=MIN_EXECUTION_S, le=MAX_EXECUTION_S)
    flashboot: bool = True
    scaler: Literal["QUEUE_DELAY", "REQUEST_COUNT"] | None = None
    scaler_value: int = Field(default=4, ge=1)
    jobs_per_worker: int = Field(default=1, ge=1, le=1024)
    image: str
    disk_gb: int | None = Field(default=None, ge=1)

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
    app: str = Field(default="mixedclf", pattern=r"^[a-z0-9][a-z0-9-]{0,40}$",
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

    def account_workers(self) -> int:
        """The sum of max workers over the endpoints: what Runpod's account worker limit caps."""
        return sum(e.worker_range.max for e in self.endpoints.values())



def placeholder_image(kind: str) -> str:
    from mixedclf import __version__

    return f"ghcr.io/your-org/mixedclf-{kind}:{__version__}"


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # a TOML basic string: JSON's escapes are TOML's


def to_toml(d: DeploySpec, header: list[str] | None = None) -> str:
    """The deployment as mixedclf-deploy.toml text (comment lines first)."""
    lines = [f"# {h}" for h in header or []]
    lines += [f"version = {d.version}", f"app = {_value(d.app)}", f"topology = {_value(d.topology)}",
              f"orchestrator = {_value(d.orchestrator)}", "", "[model]", f"name = {_value(d.model.name)}",
              f"precision = {_value(d.model.precision)}"]
    for name in sorted(d.endpoints, key=ROLES.index):
        e = d.endpoints[name]
        lines += ["", f"[endpoints.{name}]"]
        for key, v in e.model_dump(exclude_none=True).items():
            lines.append(f"{key} = {_value(v)}")
    return "\n".join(lines) + "\n"


def from_toml(text: str, source: str = "deployment") -> DeploySpec:
    try:
        return DeploySpec.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise CostInputError(f"{source}: not a mixedclf deployment ({str(exc).splitlines()[0]})") from None


def write_deployment(d: DeploySpec, path: Path, *, header: list[str] | None = None, overwrite: bool = False) -> Path:
    """Write `d` to `path`; an existing file is refused unless overwrite (it may be a hand-edited spec)."""
    if path.is_dir():
        raise CostInputError(f"--write {path}: is a folder; give a file name, e.g. {path / DEPLOY_FILE_NAME}")
    if path.exists() and not overwrite:
        raise CostInputError(f"--write {path}: the file exists; pass --force to replace it")
    text = to_toml(d, header)
    from_toml(text, str(path))  # what is written must read back as the same spec
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
