"""The Runpod control plane: the exact requests a spec becomes, and a small client that sends them.

REST v2 (`/v2/serverless`, OpenAPI of runpod/docs a900806, 2026-08-20) for everything it can express; GraphQL
`saveEndpoint` only for what it cannot (a 1-vCPU CPU instance: v2's `vcpuCount` is >= 2 and a power of two).
Base URLs come from RUNPOD_REST_API_URL and RUNPOD_API_BASE_URL (how tests reach a local fake); the key only
from RUNPOD_API_KEY, sent in the Authorization header and nowhere else: never printed, never in a body.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from mixedclf.costs.deployment import DeploySpec, parse_instance
from mixedclf.errors import InputError, MixedclfError

REST_DEFAULT = "https://api.runpod.io"
GRAPHQL_DEFAULT = "https://api.runpod.io"
DATA_PLANE_DEFAULT = "https://api.runpod.ai/v2"
# The orchestrator reads the key it calls the stages with from a Runpod secret the user creates once
# (docs/runpod.md): the deployer's key never travels in an endpoint's settings.
KEY_SECRET_REF = "{{ RUNPOD_SECRET_mixedclf_api_key }}"
REDACTED = "Bearer <RUNPOD_API_KEY>"
SAVE_ENDPOINT = (
    "mutation saveEndpoint($input: EndpointInput!) { saveEndpoint(input: $input) { id name type workersMin "
    "workersMax idleTimeout executionTimeoutMs flashBootType scalerType scalerValue instanceIds } }"
)


class DeployError(MixedclfError):
    """The control plane refused or could not be reached: what was applied so far is in the state file."""


def rest_base() -> str:
    return os.environ.get("RUNPOD_REST_API_URL", REST_DEFAULT).rstrip("/")


def graphql_url() -> str:
    return os.environ.get("RUNPOD_API_BASE_URL", GRAPHQL_DEFAULT).rstrip("/") + "/graphql"


def data_plane_base() -> str:
    return os.environ.get("RUNPOD_ENDPOINT_BASE_URL", DATA_PLANE_DEFAULT).rstrip("/")


@dataclass
class ApiRequest:
    """One request as sent: `api` is rest-v2 or graphql; `role` the endpoint it is about."""

    role: str
    api: str
    method: str
    url: str
    body: dict | None = None
    headers: dict = field(default_factory=lambda: {"Authorization": REDACTED, "Content-Type": "application/json"})

    def shown(self) -> dict:
        return {"role": self.role, "api": self.api, "method": self.method, "url": self.url,
                "headers": dict(self.headers), "body": self.body}


def needs_graphql(spec: DeploySpec, role: str) -> bool:
    ep = spec.endpoints[role]
    return ep.kind == "cpu" and parse_instance(ep.instance or "")[1] < 2


def endpoint_env(spec: DeploySpec, role: str, stage_ids: dict[str, str] | None = None) -> dict[str, str]:
    """What each endpoint's container is told. Only the orchestrator calls others, so only it gets a key (as a
    secret reference) and the stage endpoint ids."""
    ep = spec.endpoints[role]
    env = {"MIXEDCLF_STAGE": role, "MIXEDCLF_MODEL": spec.model.name, "MIXEDCLF_PRECISION": spec.model.precision,
           "MIXEDCLF_JOBS_PER_WORKER": str(ep.jobs_per_worker)}
    if role == "orchestrator":
        env.update({"PORT": "80", "PORT_HEALTH": "80", "RUNPOD_API_KEY": KEY_SECRET_REF})
        for stage in spec.stage_roles():
            known = (stage_ids or {}).get(stage)
            env[f"MIXEDCLF_ENDPOINT_{stage.upper()}"] = known or f"<id of {spec.endpoint_name(stage)}>"
    return env


def desired_view(spec: DeploySpec, role: str, stage_ids: dict[str, str] | None = None) -> dict[str, Any]:
    """The endpoint as REST v2 describes it (create body = what a GET must read back)."""
    ep = spec.endpoints[role]
    workers = ep.worker_range
    scaler = spec.scaler(role)
    view: dict[str, Any] = {
        "name": spec.endpoint_name(role),
        "type": "LOAD_BALANCER" if role == "orchestrator" else "QUEUE",
        "image": ep.image,
        "env": endpoint_env(spec, role, stage_ids),
        "workers": {"min": workers.min, "max": workers.max, "idleTimeout": ep.idle_timeout_s},
        "timeout": ep.execution_timeout_s * 1000,
        "flashboot": "FLASHBOOT" if ep.flashboot else "OFF",
        "scaling": ({"type": "QUEUE_DELAY", "queueDelay": ep.scaler_value} if scaler == "QUEUE_DELAY"
                    else {"type": "REQUEST_COUNT", "requestCount": ep.scaler_value}),
    }
    if scaler == "REQUEST_COUNT" and role != "orchestrator":
        del view["workers"]["idleTimeout"]  # v2 rejects idleTimeout on a queue endpoint scaled on requestCount
    if ep.kind == "cpu":
        flavor, vcpu, _ = parse_instance(ep.instance or "")
        view["cpu"] = [{"id": flavor, "vcpuCount": vcpu}]
    else:
        view["gpu"] = {"pools": [ep.gpu_pool], "count": ep.gpu_count}
        if ep.min_cuda_version:
            view["gpu"]["minCudaVersion"] = ep.min_cuda_version
    if ep.disk_gb is not None:
        view["disk"] = ep.disk_gb
    return view


def graphql_input(spec: DeploySpec, role: str, stage_ids: dict[str, str] | None,
                  endpoint_id: str | None = None) -> dict[str, Any]:
    """saveEndpoint's EndpointInput for what v2 cannot express (field names as runpod-flash 1.21 sends them)."""
    ep = spec.endpoints[role]
    workers = ep.worker_range
    scaler = spec.scaler(role)
    template: dict[str, Any] = {
        "name": f"{spec.endpoint_name(role)}-template",
        "imageName": ep.image,
        "env": [{"key": k, "value": v} for k, v in endpoint_env(spec, role, stage_ids).items()],
        "containerDiskInGb": ep.disk_gb or 10 * (ep.vcpus or 1),
        "dockerArgs": "",
    }
    data: dict[str, Any] = {
        "name": spec.endpoint_name(role),
        "type": "LB" if role == "orchestrator" else "QB",
        "instanceIds": [ep.instance],
        "workersMin": workers.min,
        "workersMax": workers.max,
        "idleTimeout": ep.idle_timeout_s,
        "executionTimeoutMs": ep.execution_timeout_s * 1000,
        "flashBootType": "FLASHBOOT" if ep.flashboot else "OFF",
        "scalerType": scaler,
        "scalerValue": ep.scaler_value,
        "template": template,
    }
    if endpoint_id:
        data["id"] = endpoint_id
    return data


def create_request(spec: DeploySpec, role: str, stage_ids: dict[str, str] | None = None) -> ApiRequest:
    if needs_graphql(spec, role):
        body = {"query": SAVE_ENDPOINT, "variables": {"input": graphql_input(spec, role, stage_ids)}}
        return ApiRequest(role, "graphql", "POST", graphql_url(), body)
    return ApiRequest(role, "rest-v2", "POST", f"{rest_base()}/v2/serverless", desired_view(spec, role, stage_ids))


def update_request(spec: DeploySpec, role: str, endpoint_id: str,
                   stage_ids: dict[str, str] | None = None) -> ApiRequest:
    if needs_graphql(spec, role):
        body = {"query": SAVE_ENDPOINT, "variables": {"input": graphql_input(spec, role, stage_ids, endpoint_id)}}
        return ApiRequest(role, "graphql", "POST", graphql_url(), body)
    body = desired_view(spec, role, stage_ids)
    body.pop("type")  # the routing type cannot change on update (UpdateEndpointRequest has no `type`)
    return ApiRequest(role, "rest-v2", "PATCH", f"{rest_base()}/v2/serverless/{endpoint_id}", body)


def api_key() -> str:
    key = os.environ.get("RUNPOD_API_KEY", "").strip()
    if not key:
        raise InputError("RUNPOD_API_KEY is not set", hint="plan works without it; apply, verify and destroy need it")
    return key


class ControlPlane:
    """Sends ApiRequests with the key in the Authorization header; a refusal is one DeployError line."""

    def __init__(self, key: str, timeout_s: float = 30.0):
        self._key = key
        self.timeout_s = timeout_s

    def send(self, request: ApiRequest) -> Any:
        data = json.dumps(request.body).encode() if request.body is not None else None
        headers = {**request.headers, "Authorization": f"Bearer {self._key}"}
        req = urllib.request.Request(request.url, data=data, method=request.method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300].replace(self._key, "<key>")
            raise DeployError(f"{request.method} {request.url}: HTTP {exc.code} {detail}".strip()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeployError(f"{request.method} {request.url}: cannot reach the control plane ({reason})") from None
        payload = json.loads(text) if text.strip() else None
        if request.api == "graphql" and isinstance(payload, dict) and payload.get("errors"):
            raise DeployError(f"GraphQL saveEndpoint for {request.role}: {payload['errors'][0].get('message')}")
        return payload

    def get(self, path: str) -> Any:
        return self.send(ApiRequest("-", "rest-v2", "GET", f"{rest_base()}{path}"))

    def delete(self, endpoint_id: str, role: str) -> None:
        self.send(ApiRequest(role, "rest-v2", "DELETE", f"{rest_base()}/v2/serverless/{endpoint_id}"))
