"""`mixedclf deploy init|plan|apply|verify|destroy|render|local` and `mixedclf worker`: parse, call
mixedclf.cloud, render. runpod, uvicorn and torch are imported only by the commands that run them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from mixedclf.errors import InputError

SPEC_ARG = typer.Argument(Path("mixedclf-deploy.toml"), help="The deploy spec [default: mixedclf-deploy.toml]")


def _emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


def deployed_settings(target) -> dict[str, tuple[str, ...]]:
    """What the deployed workers decide, with the values a run may set without asking for anything else: the
    spec's model and precision; `auto` (the device's and the precision's default) leaves the choice to the
    deployment; a Runpod run is reported as mode mixed (`gpu-only` would price the split stages as one GPU's);
    no backend is the workers' own to name."""
    return {"model": (target.model,), "precision": (target.precision, "auto"), "device": ("auto",),
            "backend": (), "mode": ("mixed",)}


def batch_target(opts, given: dict):
    """classify's --engine runpod --deploy SPEC: (the options with the deployed model, the deployment's target).
    A setting the deployment decides (deployed_settings) that the command line, a MIXEDCLF_* variable or the
    config file sets to another value is refused, naming where it was set; defaults are never refused."""
    from mixedclf.cloud.batch import runpod_target
    from mixedclf.core.options import option_source
    from mixedclf.engines.registry import engine_class

    if not engine_class(opts.engine).deployed:
        raise InputError("--deploy needs --engine runpod")
    if opts.deploy is None:
        raise InputError("--engine runpod needs --deploy SPEC", hint="mixedclf deploy init writes one")
    target = runpod_target(opts.deploy, opts.pricing, opts.profile)
    for name, accepted in deployed_settings(target).items():
        value = getattr(opts, name)
        source = option_source(name, given, opts.config)
        if not source.explicit or value in accepted:
            continue
        if name in ("model", "precision"):
            deployed = getattr(target, name)
            raise InputError(f"{name} {value} (from {source.where}) but {target.spec} deploys {name} {deployed}",
                             hint=f"{source.undo()}, or set it to {deployed}: the deployed workers run the spec's")
        raise InputError(f"{name} {value} (from {source.where}) but the deployment {target.spec} decides the {name}",
                         hint=source.undo())
    return opts.model_copy(update={"model": target.model, "precision": target.precision}), target


def register(app: typer.Typer) -> None:
    deploy = typer.Typer(name="deploy", no_args_is_help=True,
                         help="Deploy the pipeline on Runpod serverless from one spec (mixedclf-deploy.toml).")
    app.add_typer(deploy)

    @deploy.command("init")
    def init(spec: Path = SPEC_ARG) -> None:
        """Write the original design's spec (commented); an existing file is never overwritten."""
        from mixedclf.cloud.spec import write_init

        write_init(spec)
        _say(f"wrote {spec}: edit the image names, then mixedclf deploy render / plan / apply")

    @deploy.command("plan")
    def plan_cmd(
        spec: Path = SPEC_ARG,
        fmt: str = typer.Option("text", "--format", "-f", help="text or json (the exact requests)."),
    ) -> None:
        """Print the exact requests apply would send to an empty account (no key needed, nothing sent)."""
        from mixedclf.cloud.provision import plan
        from mixedclf.cloud.spec import load_spec

        if fmt not in ("text", "json"):
            raise InputError(f"--format must be text or json (got {fmt!r})")
        requests = plan(load_spec(spec))
        if fmt == "json":
            _emit(json.dumps([r.shown() for r in requests], indent=2))
            return
        for r in requests:
            _emit(f"# {r.role} ({r.api})\n{r.method} {r.url}\n{json.dumps(r.body, indent=2)}\n")
        _emit("# apply lists endpoints first (GET /v2/serverless) and only creates or updates what differs.")

    @deploy.command("apply")
    def apply_cmd(spec: Path = SPEC_ARG) -> None:
        """Create or update the spec's endpoints (idempotent); write <spec>.state.json beside the spec."""
        from mixedclf.cloud.provision import apply
        from mixedclf.cloud.rest import ControlPlane, api_key
        from mixedclf.cloud.spec import load_spec, state_path

        loaded = load_spec(spec)
        apply(loaded, spec, ControlPlane(api_key()), log=_say)
        _say(f"state: {state_path(spec)}")

    @deploy.command("verify")
    def verify_cmd(spec: Path = SPEC_ARG) -> None:
        """Read every endpoint back; exit 1 listing each setting that differs from the spec."""
        from mixedclf.cloud.provision import DriftFound, verify
        from mixedclf.cloud.rest import ControlPlane, api_key
        from mixedclf.cloud.spec import load_spec

        problems = verify(load_spec(spec), spec, ControlPlane(api_key()))
        for line in problems:
            _emit(f"drift: {line}")
        if problems:
            raise DriftFound(f"{len(problems)} difference(s) between {spec} and the deployment")
        _emit(f"{spec}: every endpoint is as the spec says")

    @deploy.command("destroy")
    def destroy_cmd(spec: Path = SPEC_ARG) -> None:
        """Delete the endpoints apply made (from the state file), then the state file."""
        from mixedclf.cloud.provision import destroy
        from mixedclf.cloud.rest import ControlPlane, api_key

        destroy(spec, ControlPlane(api_key()), log=_say)

    @deploy.command("render")
    def render_cmd(
        spec: Path = SPEC_ARG,
        out: Path = typer.Option(..., "--out", help="Folder for the Dockerfiles (created)."),
    ) -> None:
        """Write a Dockerfile per endpoint kind: a CPU image without torch, a pinned CUDA image."""
        from mixedclf.cloud.render import render
        from mixedclf.cloud.spec import load_spec

        for path in render(load_spec(spec), out):
            _say(f"wrote {path}")

    @deploy.command("local")
    def local_cmd(
        spec: Path = SPEC_ARG,
        port: int = typer.Option(8888, help="Port of the orchestrator (/classify, /ping, /docs); 0: a free one."),
        host: str = typer.Option("127.0.0.1", help="Address every process listens on."),
    ) -> None:
        """Run the spec's whole topology here as separate processes until Ctrl-C or SIGTERM."""
        from mixedclf.cloud.local import run_local
        from mixedclf.cloud.spec import load_spec

        run_local(load_spec(spec), spec, host=host, port=port, log=_say)

    @app.command("worker", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def worker(
        ctx: typer.Context,
        stage: str | None = typer.Option(
            None, envvar="MIXEDCLF_STAGE",
            help="pre, infer, post, all, or orchestrator (the load-balanced front end)."),
        model: str | None = typer.Option(None, envvar="MIXEDCLF_MODEL", help="Model name or folder."),
        precision: str | None = typer.Option(None, envvar="MIXEDCLF_PRECISION", help="Model precision."),
        jobs_per_worker: int | None = typer.Option(
            None, envvar="MIXEDCLF_JOBS_PER_WORKER",
            help="Jobs one worker runs at once [default: 8 for infer and all, else 1]."),
    ) -> None:
        """Run a Runpod queue worker for one stage (runpod's own flags pass through: --test_input,
        --rp_serve_api, --rp_api_port ...)."""
        from mixedclf.cloud.workers import start_worker, watch_parent

        if stage == "orchestrator":  # not a queue worker: the load-balanced server, `serve --stages-from-env`
            from mixedclf.cli.serve import build_settings, orchestrator_values, remote_timeouts, start_server

            watch_parent()
            values = {**orchestrator_values(), "model": model, "precision": precision}
            start_server(build_settings(remote_timeouts(values)))
            return
        start_worker(stage or "", model or "default", precision or "auto", jobs_per_worker, ctx.args)
