"""Each option is declared once (core.option_registry.option()): the typer options of classify and serve are
generated from the declarations, the settings layers read the same fields, and the checkpoint fingerprint takes
the ones declared as shaping the output."""

from __future__ import annotations

import click
import pytest
import typer
import typer.main
from typer.testing import CliRunner

from mixedclf.cli.app import CLASSIFY_OPTIONS, app
from mixedclf.cli.options import with_options
from mixedclf.cli.serve import SERVE_OPTIONS
from mixedclf.core.option_registry import (
    PANEL_SPEED,
    ClassifyFields,
    SharedOptions,
    cli_meta,
    declared_options,
    option,
    output_shaping,
)
from mixedclf.core.options import ClassifyOptions, LayeredSettings, build_settings
from mixedclf.errors import InputError
from mixedclf.serve.settings import ServeSettings


def _params(command_name: str) -> dict[str, click.Parameter]:
    root = typer.main.get_command(app)
    command = root.commands[command_name]
    return {p.name: p for p in command.get_params(click.Context(command)) if p.name != "help"}


def _flags(name: str, meta: dict) -> list[str]:
    flags = meta.get("flags") or [f"--{name.replace('_', '-')}"]
    return [f for decl in flags for f in decl.split("/")]


@pytest.mark.parametrize(("command", "model", "names", "own"), [
    ("classify", ClassifyFields, CLASSIFY_OPTIONS, ["config", "fmt", "quiet"]),
    ("serve", ServeSettings, SERVE_OPTIONS, ["config"]),
])
def test_the_generated_options_are_the_registry(command, model, names, own):
    assert set(names) == set(declared_options(model)), "an option declared but not on the command, or the reverse"
    params = _params(command)
    assert list(params) == [*names, *own]
    for name in names:
        field, param = model.model_fields[name], params[name]
        meta = cli_meta(field)
        assert param.help == field.description, name
        if meta.get("argument"):
            assert param.param_type_name == "argument"
            continue
        assert sorted(param.opts + param.secondary_opts) == sorted(_flags(name, meta)), name
        assert param.envvar == meta.get("envvar"), name
        assert getattr(param, "rich_help_panel", None) == meta.get("panel"), name
        assert param.required == field.is_required(), name
        if meta.get("complete"):
            assert [c.value for c in param.shell_complete(click.Context(click.Command("x")), "")] == meta["complete"]


def test_the_shared_options_are_one_declaration():
    for name in SharedOptions.model_fields:
        for model in (ClassifyFields, ClassifyOptions, ServeSettings):  # inherited, never declared again
            assert name not in model.__annotations__, (model.__name__, name)
            assert model.model_fields[name].description == SharedOptions.model_fields[name].description
        assert name in CLASSIFY_OPTIONS and name in SERVE_OPTIONS, name


def test_the_fingerprint_takes_the_options_declared_as_shaping_the_output():
    from mixedclf.engines.local_plan import OUTPUT_SHAPING

    assert output_shaping(ClassifyOptions) == OUTPUT_SHAPING
    # the set a checkpoint of an earlier version was made with: a resume across the change still matches
    assert set(OUTPUT_SHAPING) == {
        "model", "clean", "text_field", "id_field", "chunk_rows", "first_chunk_rows", "batch_size", "max_batch_tokens",
        "all_scores", "keep_text", "dedup", "on_error", "precision", "backend", "output_format", "input_format",
        "output_prefix"}


class _WithKnob(ClassifyFields):
    extra_knob: int | None = option(None, "A new knob [default: none]", panel=PANEL_SPEED, ge=1, shapes_output=True)


class _WithKnobOptions(LayeredSettings, _WithKnob):
    pass


def test_one_new_declaration_adds_the_flag_the_variable_and_the_config_key(tmp_path, monkeypatch):
    built: list = []
    knob_app = typer.Typer()

    @knob_app.command()
    @with_options(_WithKnob, (*CLASSIFY_OPTIONS, "extra_knob"))
    def classify(config: str | None = typer.Option(None), **values) -> None:
        built.append(build_settings(_WithKnobOptions, values, config))

    @knob_app.command()
    def other() -> None:  # two commands: typer then names the one invoked
        pass

    runner = CliRunner()
    monkeypatch.delenv("MIXEDCLF_EXTRA_KNOB", raising=False)

    def knob(*args: str) -> int | None:
        built.clear()
        result = runner.invoke(knob_app, ["classify", "in.jsonl", "-o", "out.jsonl", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return built[0].extra_knob

    assert knob() is None
    assert knob("--extra-knob", "3") == 3
    monkeypatch.setenv("MIXEDCLF_EXTRA_KNOB", "4")
    assert knob() == 4 and knob("--extra-knob", "3") == 3  # the command line first
    monkeypatch.delenv("MIXEDCLF_EXTRA_KNOB")
    config = tmp_path / "c.toml"
    config.write_text("[classify]\nextra_knob = 5\n")
    assert knob("--config", str(config)) == 5
    with pytest.raises(InputError, match="invalid option --extra-knob"):
        knob("--extra-knob", "0")
    assert "--extra-knob" in runner.invoke(knob_app, ["classify", "--help"]).output
    assert "extra_knob" in output_shaping(_WithKnobOptions)


def test_serve_settings_go_through_the_layered_settings(tmp_path, monkeypatch):
    """serve reads the same layers as classify (command line > MIXEDCLF_* > --config > packaged defaults)."""
    from mixedclf.cli.serve import build_settings as serve_settings

    config = tmp_path / "c.toml"
    config.write_text("[serve]\nmax_queue = 2000\nmodel = 'from-config'\n")
    monkeypatch.setenv("MIXEDCLF_MODEL", "from-env")
    settings = serve_settings({"max_wait_ms": 7.0}, config)
    assert (settings.max_wait_ms, settings.model, settings.max_queue) == (7.0, "from-env", 2000)
    assert type(settings) is ServeSettings


def test_the_platform_ports_are_one_more_layer(tmp_path, monkeypatch):
    """PORT / PORT_HEALTH (Runpod's) sit below --port and MIXEDCLF_PORT and above the config file, as a source of
    the same layered settings; a bad one is a one-line error only where it would be used."""
    from mixedclf.cli.serve import build_settings as serve_settings

    config = tmp_path / "c.toml"
    config.write_text("[serve]\nport = 8000\nhealth_port = 8001\n")
    assert (serve_settings({}, config).port, serve_settings({}, config).health_port) == (8000, 8001)
    monkeypatch.setenv("PORT", "7000")
    monkeypatch.setenv("PORT_HEALTH", "7001")
    assert (serve_settings({}, config).port, serve_settings({}, config).health_port) == (7000, 7001)
    monkeypatch.setenv("MIXEDCLF_PORT", "9000")
    assert serve_settings({}, config).port == 9000 and serve_settings({"port": 5}, config).port == 5
    monkeypatch.setenv("PORT", "http")
    assert serve_settings({}, config).port == 9000  # MIXEDCLF_PORT set: PORT is not read
    monkeypatch.delenv("MIXEDCLF_PORT")
    with pytest.raises(InputError, match="invalid PORT: 'http' is not a port number"):
        serve_settings({}, config)


def test_a_bad_config_value_names_the_config_file_and_key(tmp_path, monkeypatch):
    monkeypatch.delenv("MIXEDCLF_ENGINE", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[classify]\nengine = "nope"\n')
    with pytest.raises(InputError) as caught:
        build_settings(ClassifyOptions, {"input": "in.jsonl", "output": "out.jsonl"}, cfg)
    assert str(caught.value).startswith(f"{cfg}: [classify] engine: ") and "--engine" not in str(caught.value)
    cfg.write_text('[classify]\nengin = "runpod"\n')
    with pytest.raises(InputError) as caught:
        build_settings(ClassifyOptions, {"input": "in.jsonl", "output": "out.jsonl"}, cfg)
    assert str(caught.value).startswith(f"{cfg}: [classify] engin: ")


def test_option_source_names_the_layer_that_sets_each_value(tmp_path, monkeypatch):
    """The layers in build_settings' order, each named as a user would look for it; the packaged defaults (which set
    precision) and the fields' defaults are defaults; an empty variable sets nothing, as pydantic-settings reads it;
    MIXEDCLF_CONFIG names the config file when --config does not. The settings built agree with every answer."""
    from mixedclf.core.options import option_source

    for name in ("PRECISION", "DEVICE", "CONFIG", "BATCH_SIZE", "DEDUP"):
        monkeypatch.delenv(f"MIXEDCLF_{name}", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[classify]\nprecision = "fp16"\ndevice = "cpu"\nbatch_size = 8\n')
    cli = {"input": "in.jsonl", "output": "out.jsonl", "device": "cuda", "dedup": False}
    monkeypatch.setenv("MIXEDCLF_PRECISION", "fp32")
    monkeypatch.setenv("MIXEDCLF_BATCH_SIZE", "")  # empty: not set, the config file's 8 stands
    opts = build_settings(ClassifyOptions, cli, cfg)
    assert (opts.device, opts.precision, opts.batch_size, opts.dedup, opts.mode) == ("cuda", "fp32", 8, False, "mixed")
    source = {n: option_source(n, cli, cfg) for n in ("device", "precision", "batch_size", "dedup", "mode")}
    assert {n: (s.layer, s.where) for n, s in source.items()} == {
        "device": ("command line", "--device"), "precision": ("environment", "MIXEDCLF_PRECISION"),
        "batch_size": ("config file", f"{cfg} [classify] batch_size"), "dedup": ("command line", "--dedup"),
        "mode": ("default", "the default")}
    assert [source[n].rank for n in ("mode", "batch_size", "precision", "device")] == [0, 1, 2, 3]
    assert source["batch_size"].undo() == f"remove batch_size from [classify] in {cfg}"
    assert option_source("precision", {}, None).layer == "environment"
    monkeypatch.delenv("MIXEDCLF_PRECISION")
    assert option_source("precision", {}, None).layer == "default"  # set by the packaged default.toml
    monkeypatch.setenv("MIXEDCLF_CONFIG", str(cfg))
    assert option_source("precision", {}, None).where == f"{cfg} [classify] precision"
    assert build_settings(ClassifyOptions, {"input": "i", "output": "o"}).precision == "fp16"
