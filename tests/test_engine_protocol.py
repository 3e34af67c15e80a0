"""Engines are reached through one protocol: the generic runner resolves the run once into a RunPlan and hands it
to the engine the registry names; no module branches on which engine it is."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from conftest import write_jsonl

import mixedclf.engines.registry as registry
from mixedclf.core.options import build_options
from mixedclf.engines.local import LocalRunner
from mixedclf.engines.plan import RunPlan, plan_classify
from mixedclf.engines.run import classify_file
from mixedclf.errors import InputError

PACKAGE = Path(__file__).resolve().parents[1] / "mixedclf"
# `opts.engine == "local"`, `engine != 'ray'`, `engine in ("local", ...)`: a runner that asks which engine it has
ENGINE_BRANCH = re.compile(r"""\bengine\s*(==|!=)\s*['"]|\bengine\s+(not\s+)?in\s*[(\[{]""")


def test_no_module_branches_on_the_engine_name():
    found = [f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if ENGINE_BRANCH.search(line)]
    assert not found, "branches on the engine's name (ask the registry's Engine instead):\n" + "\n".join(found)


def test_the_branch_pattern_sees_what_it_forbids():
    for line in ('if opts.engine == "local":', "if o.engine != 'ray':", 'if engine in ("local", "ray"):'):
        assert ENGINE_BRANCH.search(line), line
    assert not ENGINE_BRANCH.search("engine = engine_class(opts.engine)")


@pytest.mark.parametrize("name", sorted(registry.ENGINES))
def test_every_registered_engine_has_the_protocol(name):
    module, attr = registry.ENGINES[name].split(":")
    cls = getattr(importlib.import_module(module), attr)
    assert registry.engine_class(name) is cls
    assert isinstance(cls.in_process, bool) and isinstance(cls.deployed, bool)
    assert list(inspect.signature(cls.cache_refusal).parameters) == ["opts"]
    assert list(inspect.signature(cls.run).parameters) == ["self", "plan", "hooks"]


def test_every_engine_option_is_registered():
    from typing import get_args

    from mixedclf.core.options import ClassifyOptions

    assert set(get_args(ClassifyOptions.model_fields["engine"].annotation)) == set(registry.ENGINES)


def test_an_unknown_engine_is_one_clear_error():
    with pytest.raises(InputError, match="unknown engine 'nope'"):
        registry.engine_class("nope")


class _Recording(LocalRunner):
    plans: list[RunPlan] = []

    def run(self, plan, hooks):
        self.plans.append(plan)
        return super().run(plan, hooks)


def test_classify_hands_the_registered_engine_one_plan_resolved_once(tmp_path, tiny_model, monkeypatch):
    """The runner takes the engine from the registry and resolves the input once (it was resolved two or three
    times: the apart check, the progress bar, the engine's own set-up)."""
    import mixedclf.io.runio as runio

    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": f"text number {i}"} for i in range(30)])
    monkeypatch.setitem(registry.ENGINES, "local", f"{__name__}:_Recording")
    calls = []
    real = runio.resolve_source
    monkeypatch.setattr(runio, "resolve_source", lambda *a, **k: calls.append(a) or real(*a, **k))
    _Recording.plans.clear()
    opts = build_options(dict(input=str(source), output=str(tmp_path / "out.jsonl"), model=str(tiny_model),
                              mode="gpu-only", precision="fp32", no_cache=True, chunk_rows=8, batch_size=4))
    result = classify_file(opts, progress=True)
    (plan,) = _Recording.plans
    assert len(calls) == 1
    assert plan.engine == "local" and plan.io.out_kind == "file" and plan.io.in_fmt == "jsonl"
    assert (plan.chunks.most, plan.chunks.first) == (8, 8) and plan.batch.batch_size == 4
    settings = result.report.settings
    assert (settings["chunk_rows"], settings["first_chunk_rows"], settings["batch_size"]) == (8, 8, 4)
    assert "engine" not in settings and result.report.rows_out == 30


def test_an_engine_elsewhere_gets_no_meter_and_no_cache(tmp_path, tiny_model, monkeypatch):
    """What an engine is (in this process or not; whether it takes the cache) decides the cost meter and the
    cache, not its name."""
    seen = []

    class Elsewhere:
        in_process = False

        @classmethod
        def cache_refusal(cls, opts):
            return f"the prediction cache is not used with --engine {opts.engine}"

        def run(self, plan, hooks):
            seen.append(hooks)
            raise InputError("stop here")

    import mixedclf.engines.run as run

    monkeypatch.setattr(run, "engine_class", lambda name: Elsewhere)
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    values = dict(input=str(source), output=str(tmp_path / "o.jsonl"), model=str(tiny_model))
    with pytest.raises(InputError, match="--max-cost needs --engine local"):
        classify_file(build_options({**values, "max_cost": 1.0}))
    warned: list[str] = []
    with pytest.raises(InputError, match="stop here"):
        classify_file(build_options({**values, "no_cache": False, "cache": str(tmp_path / "c.sqlite3")}),
                      warn=warned.append)
    (hooks,) = seen
    assert hooks.meter is None and hooks.answers is None
    assert warned == ["the prediction cache is not used with --engine local"]
    # the default cache (none named) is off for such an engine without a word: a -q cron run stays silent
    seen.clear()
    with pytest.raises(InputError, match="stop here"):
        classify_file(build_options({**values, "no_cache": False}), warn=warned.append)
    assert seen[0].answers is None and len(warned) == 1


def test_the_plan_checks_the_run_before_any_engine(tmp_path, tiny_model):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    with pytest.raises(InputError, match="the output is the input file"):
        plan_classify(build_options(dict(input=str(source), output=str(source), model=str(tiny_model))))
    plan = plan_classify(build_options(dict(input=str(source), output=str(tmp_path / "folder"),
                                            model=str(tiny_model), engine="ray")))
    assert plan.io.out_kind == "folder" and plan.io.out_fmt == "parquet"
    assert (plan.chunks.most, plan.chunks.first) == (1024, 1024) and plan.spec.path == tiny_model.resolve()
