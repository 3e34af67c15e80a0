"""`mixedclf serve --stages-from-env`: the server's stages run on deployed stage endpoints (the Runpod
load-balanced orchestrator of the original design; `deploy local` runs it against local workers).

The routes, bodies, validation, admission, micro-batching and async jobs are the local server's; only the stage
calls differ. Split topology (pre, infer, post endpoints): each request's preprocess is a `pre` job, the
micro-batcher's batch is ONE `infer` job (requests arriving together still share a device call), each request's
postprocess is a `post` job. Single topology (one `all` endpoint): the micro-batcher's batch is one `all` job per
cleaning mode, which does everything. Jobs go through Runpod's queue data plane (io/runpod_jobs.py) with the key
in RUNPOD_API_KEY; a stage's own error (bad input) is answered at once, not sent again. Billed seconds are the
jobs' `executionTime`, as Runpod reports it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mixedclf.core.sequences import Sequences, concat_sequences
from mixedclf.core.wire import StageInputError, decode_scored, decode_sequences, encode_scored, encode_sequences
from mixedclf.errors import InputError
from mixedclf.io.runpod_jobs import DataPlane, JobFailed
from mixedclf.serve.batcher import BatchOutcome
from mixedclf.serve.device import DeviceShare, share_batch

SPLIT = ("pre", "infer", "post")
# Threads waiting on pre and post jobs at once. asyncio's default executor has min(32, cores + 4): 5 on the
# orchestrator's 1-vCPU instance, which would hold the whole server to 5 requests in flight; the waits are idle
# sockets, and admission (--max-queue) bounds them anyway.
STAGE_CALLS = 64
# infer jobs out at once (each one micro-batch): as many as an infer worker takes together by default
# (cloud/workers.py DEFAULT_DEVICE_JOBS), so its device call merges them; past that, requests batch here.
INFER_JOBS_IN_FLIGHT = 8
ENDPOINT_VARIABLE = "MIXEDCLF_ENDPOINT_{}"


@dataclass
class TextsPart:
    """One request's texts on their way to an `all` endpoint (single topology: nothing is preprocessed here)."""

    texts: list[str]
    clean: str

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class RemoteStages:
    """The stage endpoints one server calls (role -> endpoint id) over one data plane."""

    plane: DataPlane
    ids: dict[str, str]  # pre, infer, post; or all
    labels: int = 2  # the model's label count: the width of the logits infer answers
    clean: str = "standard"  # what a request's texts get unless a route says otherwise
    infer_in_flight: int = INFER_JOBS_IN_FLIGHT
    calls: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(STAGE_CALLS, thread_name_prefix="mixedclf-stage-call"))
    _answered: set[str] = field(default_factory=set)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, labels: int = 2,
                 clean: str = "standard") -> RemoteStages:
        """MIXEDCLF_ENDPOINT_PRE, _INFER and _POST (or _ALL); RUNPOD_ENDPOINT_BASE_URL (the data plane);
        RUNPOD_API_KEY (the key the stages are called with)."""
        ids = {role: environ[ENDPOINT_VARIABLE.format(role.upper())] for role in (*SPLIT, "all")
               if environ.get(ENDPOINT_VARIABLE.format(role.upper()))}
        if set(ids) not in (set(SPLIT), {"all"}):
            found = ", ".join(ENDPOINT_VARIABLE.format(r.upper()) for r in sorted(ids)) or "none"
            raise InputError(f"--stages-from-env needs MIXEDCLF_ENDPOINT_PRE, _INFER and _POST, or _ALL alone "
                             f"(found: {found})", hint="deploy apply sets them on the orchestrator endpoint")
        base = (environ.get("RUNPOD_ENDPOINT_BASE_URL") or "https://api.runpod.ai/v2").rstrip("/")
        return cls(DataPlane(base, environ.get("RUNPOD_API_KEY", ""), retry_failed=False), ids, labels, clean)

    @property
    def single(self) -> bool:
        return "all" in self.ids

    def describe(self) -> str:
        return ", ".join(f"{role} {endpoint}" for role, endpoint in self.ids.items())

    def healthy(self) -> bool:
        """True once every stage endpoint has answered /health once (then it stays true: a stage that scales
        to zero later is the data plane's to wake, not a reason to leave the load balancer)."""
        for endpoint in self.ids.values():
            if endpoint not in self._answered and self.plane.healthy([endpoint]):
                self._answered.add(endpoint)
        return self._answered >= set(self.ids.values())

    def call(self, role: str, payload: dict) -> tuple[dict, float]:
        """One job on the role's endpoint: its output and its billed seconds (Runpod's executionTime)."""
        answer = self.plane.run_answer(self.ids[role], payload, name=role)
        output = answer.get("output")
        if not isinstance(output, dict):
            raise JobFailed(502, f"{role}: answered no output object")
        return output, float(answer.get("executionTime") or 0) / 1000.0

    # --- the stages -----------------------------------------------------------------------------------------
    def pre(self, texts: list[str], clean: str | None) -> tuple[Sequences, float]:
        output, busy = self.call("pre", {"texts": texts, "clean": clean or self.clean})
        seqs = self._decoded("pre", lambda: decode_sequences(output.get("sequences")))
        if len(seqs) != len(texts):
            raise JobFailed(502, f"pre: answered {len(seqs)} sequences for {len(texts)} texts")
        return seqs, busy

    def run_batch(self, parts: list) -> BatchOutcome:
        """The micro-batcher's batch as jobs (run in its one thread): one `infer` job for every request's
        sequences (split), or one `all` job per cleaning mode (single)."""
        if self.single:
            return self._run_all(parts)
        output, busy = self.call("infer", {"sequences": encode_sequences(concat_sequences(parts))})
        _seqs, logits = self._decoded("infer", lambda: decode_scored(output.get("scored"), self.labels))
        rows = sum(len(p) for p in parts)
        if len(logits) != rows:
            raise JobFailed(502, f"infer: answered {len(logits)} rows for {rows} sequences")
        return share_batch(parts, logits, busy, [rows])

    def _run_all(self, parts: list[TextsPart]) -> BatchOutcome:
        shares: list[DeviceShare | None] = [None] * len(parts)
        busy_total, jobs = 0.0, []
        for clean in dict.fromkeys(p.clean for p in parts):
            chosen = [i for i, p in enumerate(parts) if p.clean == clean]
            texts = [t for i in chosen for t in parts[i].texts]
            output, busy = self.call("all", {"texts": texts, "clean": clean})
            results = output.get("results")
            if not isinstance(results, list) or len(results) != len(texts):
                raise JobFailed(502, f"all: answered {len(results) if isinstance(results, list) else 'no'} "
                                     f"results for {len(texts)} texts")
            start = 0
            for i in chosen:
                n = len(parts[i])
                shares[i] = DeviceShare(np.zeros((0, 0), np.float32), busy * n / len(texts), results[start:start + n])
                start += n
            busy_total += busy
            jobs.append(len(texts))
        return BatchOutcome(shares, busy_total, jobs)

    def post(self, seqs: Sequences, logits: np.ndarray) -> tuple[list[dict], float]:
        output, busy = self.call("post", {"scored": encode_scored(seqs, logits)})
        results = output.get("results")
        if not isinstance(results, list) or len(results) != len(seqs):
            raise JobFailed(502, f"post: answered {len(results) if isinstance(results, list) else 'no'} results "
                                 f"for {len(seqs)} rows")
        return results, busy

    @staticmethod
    def _decoded(role: str, decode):
        try:
            return decode()
        except StageInputError as exc:
            raise JobFailed(502, f"{role}: answered what the next stage cannot read: {exc}") from None
