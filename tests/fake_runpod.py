"""A recording fake of Runpod's control plane (REST v2 /v2/serverless and GraphQL saveEndpoint) on 127.0.0.1.

It stores endpoints as v2 describes them, answers GET/POST/PATCH/DELETE, records every request (method, path,
Authorization, body) and can be told to misreport a field (`drift`), as a control plane that silently drops
or overrides a setting would.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeControlPlane:
    def __init__(self, key: str):
        self.key = key
        self.endpoints: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.drift: dict[str, dict] = {}  # endpoint name -> fields to misreport
        self._next = 0
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code: int, payload=None):
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                plane.requests.append({"method": self.command, "path": self.path,
                                       "auth": self.headers.get("Authorization"), "body": body})
                if self.headers.get("Authorization") != f"Bearer {plane.key}":
                    return self._answer(401, {"error": "unauthorized"})
                code, payload = plane.route(self.command, self.path, body)
                self._answer(code, payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _new_id(self) -> str:
        self._next += 1
        return f"ep{self._next:03d}"

    def _shown(self, ep: dict) -> dict:
        out = json.loads(json.dumps(ep))
        for key, value in self.drift.get(ep["name"], {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key].update(value)
            else:
                out[key] = value
        return out

    def _store(self, ep_id: str, body: dict) -> dict:
        ep = {**body, "id": ep_id, "createdAt": "2026-12-06T06:00:00Z", "dataCenterIds": [], "networkVolumes": []}
        for cpu in ep.get("cpu", []):
            cpu["memory"] = cpu["vcpuCount"] * (4 if cpu["id"] == "cpu3g" else 2)
        if ep.get("type") == "LOAD_BALANCER":
            ep["requestUrls"] = {"base": f"https://{ep_id}.api.runpod.ai", "health": f"https://{ep_id}.api.runpod.ai/ping"}
        else:
            ep["requestUrls"] = {k: f"https://api.runpod.ai/v2/{ep_id}/{k}" for k in ("run", "runsync", "health")}
        self.endpoints[ep_id] = ep
        return ep

    def route(self, method: str, path: str, body):
        if path == "/v2/serverless" and method == "GET":
            return 200, {"endpoints": [self._shown(e) for e in self.endpoints.values()]}
        if path == "/v2/serverless" and method == "POST":
            return 201, self._store(self._new_id(), body)
        if path.startswith("/v2/serverless/"):
            ep_id = path.rsplit("/", 1)[1]
            if ep_id not in self.endpoints:
                return 404, {"error": "not found"}
            if method == "GET":
                return 200, self._shown(self.endpoints[ep_id])
            if method == "PATCH":
                merged = {**self.endpoints[ep_id], **body}
                return 200, self._store(ep_id, merged)
            if method == "DELETE":
                del self.endpoints[ep_id]
                return 204, None
        if path == "/graphql" and method == "POST":
            data = body["variables"]["input"]
            ep_id = data.get("id") or self._new_id()
            instance = data["instanceIds"][0]
            flavor, vcpu, _ = instance.split("-")
            view = {
                "name": data["name"], "type": "LOAD_BALANCER" if data["type"] == "LB" else "QUEUE",
                "image": data["template"]["imageName"],
                "env": {e["key"]: e["value"] for e in data["template"]["env"]},
                "workers": {"min": data["workersMin"], "max": data["workersMax"], "idleTimeout": data["idleTimeout"]},
                "timeout": data["executionTimeoutMs"], "flashboot": data["flashBootType"],
                "scaling": ({"type": "REQUEST_COUNT", "requestCount": data["scalerValue"]}
                            if data["scalerType"] == "REQUEST_COUNT"
                            else {"type": "QUEUE_DELAY", "queueDelay": data["scalerValue"]}),
                "cpu": [{"id": flavor, "vcpuCount": int(vcpu)}],
            }
            self._store(ep_id, view)
            return 200, {"data": {"saveEndpoint": {"id": ep_id, "name": data["name"]}}}
        return 404, {"error": f"no route {method} {path}"}
