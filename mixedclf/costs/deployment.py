"""The deployment `mixedclf plan` writes: a typed model of `mixedclf-deploy.toml` (issue 20's spec) and its TOML.

Only the keys the planner decides are written (topology, orchestrator, model, and per endpoint its kind, CPU
instance or GPU pool, workers, idle and execution timeouts, FlashBoot); the deploy spec (mixedclf/cloud/spec.py)
reads the same keys and may add its own. Endpoints: `pre`, `infer`, `post` (split), `all` (single: one GPU
endpoint running the whole pipeline, the worker's `--stage all`), and `orchestrator` when it is `lb`.

Pure module: no torch, no pools.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mixedclf.costs.pricing import CostInputError, instance_vcpus

#: Runpod's default execution timeout (endpoint settings page), seconds.
DEFAULT_EXECUTION_TIMEOUT_S = 600
DEPLOY_FILE_NAME = "mixedclf-deploy.toml"


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    precision: str = "auto"


class EndpointPlan(BaseModel):
    """One Runpod serverless endpoint: what runs it and how it scales."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["cpu", "gpu"]
    instance: str | None = None  # CPU: a Runpod instance id, e.g. cpu3c-2-4
    gpu_pool: str | None = None  # GPU: a Runpod pool id, e.g. ADA_24
    workers: str  # "MIN:MAX"
    idle_timeout_s: int = Field(ge=1, le=3600)
    execution_timeout_s: int = Field(default=DEFAULT_EXECUTION_TIMEOUT_S, ge=5)
    flashboot: bool = True
    # The image the endpoint runs: `mixedclf deploy render` writes its Dockerfile; the planner names the same
    # placeholder registry as `mixedclf deploy init`, to be replaced by where the image is pushed.
    image: str = ""

    @model_validator(mode="after")
    def _check(self) -> EndpointPlan:
        if not self.image:
            self.image = placeholder_image("cpu" if self.kind == "cpu" else "gpu")
        if self.kind == "cpu" and (self.instance is None or self.gpu_pool is not None):
            raise ValueError("a cpu endpoint names an instance and no gpu_pool")
        if self.kind == "gpu" and (self.gpu_pool is None or self.instance is not None):
            raise ValueError("a gpu endpoint names a gpu_pool and no instance")
        if self.instance is not None:
            instance_vcpus(self.instance)
        lo, hi = self.worker_range
        if not 0 <= lo <= hi or hi < 1:
            raise ValueError(f"workers {self.workers!r}: expected MIN:MAX with 0 <= MIN <= MAX and MAX >= 1")
        return self

    @property
    def worker_range(self) -> tuple[int, int]:
        lo, _, hi = self.workers.partition(":")
        try:
            return int(lo), int(hi)
        except ValueError:
            raise ValueError(f"workers {self.workers!r}: expected MIN:MAX") from None

    @property
    def vcpus(self) -> int | None:
        return instance_vcpus(self.instance) if self.instance else None


def placeholder_image(kind: str) -> str:
    from mixedclf import __version__

    return f"ghcr.io/your-org/mixedclf-{kind}:{__version__}"


ENDPOINT_ORDER = ("pre", "infer", "post", "all", "orchestrator")


class Deployment(BaseModel):
    """What `mixedclf plan` chose, in the deploy spec's shape."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    topology: Literal["single", "split"]
    orchestrator: Literal["lb", "client"]
    model: ModelSpec = ModelSpec()
    endpoints: dict[str, EndpointPlan]

    @model_validator(mode="after")
    def _check(self) -> Deployment:
        want = {"pre", "infer", "post"} if self.topology == "split" else {"all"}
        if self.orchestrator == "lb":
            want.add("orchestrator")
        if set(self.endpoints) != want:
            raise ValueError(f"a {self.topology} deployment with orchestrator {self.orchestrator!r} has endpoints "
                             f"{', '.join(sorted(want))}; got {', '.join(sorted(self.endpoints)) or 'none'}")
        return self

    def account_workers(self) -> int:
        """The sum of max workers over the endpoints: what Runpod's account worker limit caps."""
        return sum(e.worker_range[1] for e in self.endpoints.values())


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # a TOML basic string: JSON's escapes are TOML's


def to_toml(d: Deployment, header: list[str] | None = None) -> str:
    """The deployment as mixedclf-deploy.toml text (comment lines first)."""
    lines = [f"# {h}" for h in header or []]
    lines += [f"version = {d.version}", f"topology = {_value(d.topology)}", f"orchestrator = {_value(d.orchestrator)}",
              "", "[model]", f"name = {_value(d.model.name)}", f"precision = {_value(d.model.precision)}"]
    for name in sorted(d.endpoints, key=ENDPOINT_ORDER.index):
        e = d.endpoints[name]
        lines += ["", f"[endpoints.{name}]"]
        for key, v in e.model_dump(exclude_none=True).items():
            lines.append(f"{key} = {_value(v)}")
    return "\n".join(lines) + "\n"


def from_toml(text: str, source: str = "deployment") -> Deployment:
    try:
        return Deployment.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise CostInputError(f"{source}: not a mixedclf deployment ({str(exc).splitlines()[0]})") from None


def write_deployment(d: Deployment, path: Path, *, header: list[str] | None = None, overwrite: bool = False) -> Path:
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
