"""Joining the Ray cluster a run names (or starting a private Ray), with the checks that make a wrong address
fail in seconds and in one line rather than after minutes of Ray's retries."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from mixedclf.engines.ray.errors import first_line
from mixedclf.errors import InputError


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a HOST:PORT nobody answers (ray.init would retry for minutes)."""
    if address.startswith("ray://"):
        address = address[len("ray://"):].split("/", 1)[0]  # Ray Client: its server's host:port
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # something ray.init knows better
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                         hint="start its head with `ray start --head` and pass HEAD_IP:6379") from None


def check_auto() -> None:
    """`auto` stands for the cluster `ray start` last recorded on this machine (Ray's own lookup), checked like
    any given address: a cluster that died uncleanly leaves its record behind."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        found = canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError) as exc:
        raise InputError(f"--ray-address auto: {first_line(exc)}",
                         hint="start one with `ray start --head`, or leave --ray-address unset") from None
    if found:
        try:
            check_reachable(found)
        except InputError:
            raise InputError(f"--ray-address auto: the Ray cluster last started here ({found}) does not answer",
                             hint="a cluster that stopped uncleanly leaves its address behind: `ray stop` clears "
                                  "it; or leave --ray-address unset for a private Ray") from None


def connect(ray_address: str | None) -> bool:
    """Join the cluster (or start a local Ray); True when this call started it, so it is ours to stop."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.ERROR, "configure_logging": True}
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # A private Ray for this run. Not ray.init(address=None): that joins whatever cluster Ray's
        # current-cluster file names, and a cluster that died uncleanly leaves that file behind.
        kwargs["num_cpus"] = os.cpu_count() or 1
    else:
        check_auto() if address == "auto" else check_reachable(address)
    # Ray's C++ core logs notices on stderr that are not errors of this run (real failures reach us as
    # exceptions); a user who wants them sets RAY_BACKEND_LOG_LEVEL.
    quiet_backend = "RAY_BACKEND_LOG_LEVEL" not in os.environ
    if quiet_backend:
        os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    try:
        ray.init(address=address or "local", **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        hint = "start it with `ray start --head`, or leave --ray-address unset"
        if address and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
            hint = ("if the cluster uses token authentication (Ray's default), export RAY_AUTH_MODE=token "
                    "with the head's ~/.ray/auth_token copied here or its value in RAY_AUTH_TOKEN")
        raise InputError(f"cannot start or join {where}: {first_line(exc)}", hint=hint) from exc
    finally:
        if quiet_backend:
            os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)
    return True
