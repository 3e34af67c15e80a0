"""plan / apply / verify / destroy: a spec against what the control plane holds, and the state file between.

apply finds endpoints by name, creates what is missing and updates only what differs, so a second apply sends
nothing but the listing; the state file (`<spec>.state.json`, beside the spec) records ids and URLs. verify
reads every endpoint back and reports each field that differs from the spec: a control plane that silently
drops a setting (runpod-flash 1.21 sent executionTimeoutMs 0 and FlashBoot on whatever was declared) fails it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mixedclf.cloud.rest import (
    ApiRequest,
    ControlPlane,
    create_request,
    data_plane_base,
    desired_view,
    needs_graphql,
    update_request,
)
from mixedclf.cloud.spec import state_path
from mixedclf.costs.deployment import DeploySpec
from mixedclf.errors import InputError, MixedclfError


class DriftFound(MixedclfError):
    """verify found the deployment differs from the spec (exit 1)."""


class DeployedEndpoint(BaseModel):
    id: str
    name: str
    api: str
    url: str


class DeployState(BaseModel):
    version: int = 1
    spec: str
    spec_sha256: str
    applied_at: float
    target: str  # "runpod" or "local"
    endpoints: dict[str, DeployedEndpoint]


def spec_digest(spec_path: Path) -> str:
    return hashlib.sha256(spec_path.read_bytes()).hexdigest()


def write_state(spec_path: Path, state: DeployState) -> Path:
    """Atomically (a crash leaves the previous state file, never half of one)."""
    path = state_path(spec_path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(state.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_state(spec_path: Path) -> DeployState:
    path = state_path(spec_path)
    try:
        return DeployState.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no state file (run mixedclf deploy apply first)") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a deploy state file ({str(exc).splitlines()[0]})") from None


def order(spec: DeploySpec) -> list[str]:
    """Stages first: the orchestrator is told their ids."""
    return spec.stage_roles() + (["orchestrator"] if "orchestrator" in spec.endpoints else [])


def plan(spec: DeploySpec) -> list[ApiRequest]:
    """The requests apply sends to a control plane holding none of the spec's endpoints (no network, no key).
    Stage ids the orchestrator needs are placeholders until apply knows them."""
    return [create_request(spec, role) for role in order(spec)]


def _subset_diff(want: Any, have: Any, where: str) -> list[str]:
    """Every place `have` differs from `want`; dict keys only `have` carries are ignored except in env,
    where an extra variable (a key injected into a stage) is itself drift."""
    if isinstance(want, dict) and isinstance(have, dict):
        out = []
        for key, value in want.items():
            out += _subset_diff(value, have.get(key), f"{where}.{key}")
        if where.endswith(".env"):
            out += [f"{where}.{key}: not in the spec, deployed {_short(have[key], key)}"
                    for key in sorted(set(have) - set(want))]
        return out
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        return [d for i, (w, h) in enumerate(zip(want, have, strict=True)) for d in _subset_diff(w, h, f"{where}[{i}]")]
    if want != have:
        return [f"{where}: spec {json.dumps(want)}, deployed {json.dumps(have)}"]
    return []


def _short(value: Any, key: str) -> str:
    return "<hidden>" if "KEY" in key.upper() or "SECRET" in key.upper() else json.dumps(value)


def endpoint_diff(spec: DeploySpec, role: str, deployed: dict, stage_ids: dict[str, str]) -> list[str]:
    return _subset_diff(desired_view(spec, role, stage_ids), deployed, role)


def _listing(plane: ControlPlane) -> dict[str, dict]:
    payload = plane.get("/v2/serverless") or {}
    return {ep["name"]: ep for ep in payload.get("endpoints", []) if isinstance(ep, dict) and "name" in ep}


def _url(role: str, endpoint: dict) -> str:
    urls = endpoint.get("requestUrls") or {}
    if role == "orchestrator":
        return urls.get("base") or f"https://{endpoint['id']}.api.runpod.ai"
    run = urls.get("run")
    return run.rsplit("/", 1)[0] if run else f"{data_plane_base()}/{endpoint['id']}"


def apply(spec: DeploySpec, spec_path: Path, plane: ControlPlane, log=print) -> tuple[DeployState, list[ApiRequest]]:
    """Create what is missing, update what differs, leave the rest; the state file is written after each
    endpoint, so an apply cut short is continued by the next one."""
    existing = _listing(plane)
    sent: list[ApiRequest] = []
    endpoints: dict[str, DeployedEndpoint] = {}
    stage_ids: dict[str, str] = {}
    for role in order(spec):
        name = spec.endpoint_name(role)
        have = existing.get(name)
        if have is None:
            request = create_request(spec, role, stage_ids)
            answer = plane.send(request)
            have = _created(request, answer)
            log(f"{role}: created {name} ({have['id']})")
        elif endpoint_diff(spec, role, have, stage_ids):
            request = update_request(spec, role, have["id"], stage_ids)
            plane.send(request)
            log(f"{role}: updated {name} ({have['id']}): " + "; ".join(endpoint_diff(spec, role, have, stage_ids)))
        else:
            request = None
            log(f"{role}: {name} ({have['id']}) already as the spec says")
        if request is not None:
            sent.append(request)
        stage_ids[role] = have["id"]
        endpoints[role] = DeployedEndpoint(id=have["id"], name=name, url=_url(role, have),
                                           api="graphql" if needs_graphql(spec, role) else "rest-v2")
        state = DeployState(spec=spec_path.name, spec_sha256=spec_digest(spec_path), applied_at=time.time(),
                            target="runpod", endpoints=dict(endpoints))
        write_state(spec_path, state)
    return state, sent


def _created(request: ApiRequest, answer: Any) -> dict:
    graphql = ((answer or {}).get("data") or {}).get("saveEndpoint") if request.api == "graphql" else None
    made = (graphql or {}) if request.api == "graphql" else (answer or {})
    if not made.get("id"):
        from mixedclf.cloud.rest import DeployError

        raise DeployError(f"{request.role}: the control plane answered without an endpoint id")
    return {"id": made["id"], "requestUrls": made.get("requestUrls")}


def verify(spec: DeploySpec, spec_path: Path, plane: ControlPlane) -> list[str]:
    """Every difference between the spec and what the control plane reads back (empty: as specified)."""
    state = read_state(spec_path)
    if state.target != "runpod":
        raise InputError(f"{state_path(spec_path)} describes a local topology (deploy local): nothing on Runpod "
                         "to verify")
    stage_ids = {role: ep.id for role, ep in state.endpoints.items()}
    problems: list[str] = []
    if state.spec_sha256 != spec_digest(spec_path):
        problems.append(f"{spec_path.name}: changed since apply (run mixedclf deploy apply)")
    for role in order(spec):
        known = state.endpoints.get(role)
        if known is None:
            problems.append(f"{role}: not applied")
            continue
        try:
            deployed = plane.get(f"/v2/serverless/{known.id}")
        except MixedclfError as exc:
            problems.append(f"{role}: cannot read {known.name} ({known.id}) back: {exc}")
            continue
        problems += endpoint_diff(spec, role, deployed or {}, stage_ids)
    return problems


def destroy(spec_path: Path, plane: ControlPlane, log=print) -> list[str]:
    """Delete every endpoint the state file names (an endpoint already gone counts as deleted), orchestrator
    first so nothing calls a deleted stage; the state file goes last."""
    state = read_state(spec_path)
    if state.target != "runpod":
        raise InputError(f"{state_path(spec_path)} describes a local topology: stop mixedclf deploy local instead")
    deleted = []
    for role in sorted(state.endpoints, key=lambda r: r != "orchestrator"):
        ep = state.endpoints[role]
        try:
            plane.delete(ep.id, role)
        except MixedclfError as exc:
            if "HTTP 404" not in str(exc):
                raise
        deleted.append(role)
        log(f"{role}: deleted {ep.name} ({ep.id})")
        remaining = {r: e for r, e in state.endpoints.items() if r not in deleted}
        if remaining:
            write_state(spec_path, state.model_copy(update={"endpoints": remaining}))
    state_path(spec_path).unlink(missing_ok=True)
    return deleted
