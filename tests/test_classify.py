"""classify end to end: formats, order, modes, reports, and equivalence with transformers' pipeline."""

import json

import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_JSONL, write_jsonl
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.core.options import DEFAULT_CHUNK_ROWS, build_options, chunk_rows_for
from mixedclf.costs.report import load_report

runner = CliRunner()


def run_cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def read_rows(path):
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path).to_pylist()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def sample_rows():
    return [json.loads(line) for line in SAMPLE_JSONL.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("in_ext", ["jsonl", "parquet", "csv"])
@pytest.mark.parametrize("out_ext", ["jsonl", "parquet", "csv"])
def test_every_format_in_and_out_keeps_rows_and_order(tmp_path, tiny_model, sample_rows, in_ext, out_ext):
    source = SAMPLE_JSONL.with_suffix(f".{in_ext}")
    out = tmp_path / f"out.{out_ext}"
    result = run_cli("classify", source, "-o", out, "--model", tiny_model, "--mode", "gpu-only", "--quiet")
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert [str(r["id"]) for r in rows] == [r["id"] for r in sample_rows]
    assert {"label", "score", "confidence", "word_count", "truncated", "source", "stars"} <= set(rows[0])
    assert "text" not in rows[0]
    assert all(r["label"] in ("NEGATIVE", "POSITIVE") for r in rows)
    assert result.output == ""  # --quiet: nothing on success


def test_mixed_and_gpu_only_give_identical_predictions_and_both_reports(tmp_path, tiny_model):
    outputs = {}
    for mode in ("mixed", "gpu-only"):
        out, report = tmp_path / f"{mode}.jsonl", tmp_path / f"{mode}.json"
        result = run_cli("classify", SAMPLE_JSONL, "-o", out, "--model", tiny_model, "--mode", mode,
                         "--report", report, "--cpu-workers", "1", "--chunk-rows", "64")
        assert result.exit_code == 0, result.output
        assert "GPU-only" in result.output and "inference" in result.output
        outputs[mode] = read_rows(out)
        saved = load_report(report)
        assert saved.mode == mode and saved.rows_out == 300
        stages = {s.name: s for s in saved.measurements.stages}
        assert stages["inference"].items == 300 and stages["preprocess"].busy_s > 0
        if mode == "mixed":
            assert stages["preprocess"].billing == "cpu" and saved.measurements.cpu_pool_workers == 1
        else:
            assert all(s.billing == "gpu" for s in saved.measurements.stages)
    assert outputs["mixed"] == outputs["gpu-only"]


def test_chunks_split_across_workers_give_the_same_output(tmp_path, tiny_model, sample_rows):
    # 1,200 rows in one chunk, two workers: the chunk is preprocessed as two slices and joined again.
    rows = [{**row, "id": i} for i, row in enumerate((sample_rows * 4)[:1200])]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    outputs = {}
    for mode, workers in (("mixed", "2"), ("gpu-only", "1")):
        out = tmp_path / f"{mode}.jsonl"
        result = run_cli("classify", source, "-o", out, "--model", tiny_model, "--mode", mode, "--cpu-workers",
                         workers, "--no-dedup", "--quiet")
        assert result.exit_code == 0, result.output
        outputs[mode] = read_rows(out)
    assert len(outputs["mixed"]) == 1200 and outputs["mixed"] == outputs["gpu-only"]


def test_chunk_rows_default_depends_on_the_engine(tmp_path):
    opts = {"input": tmp_path / "in.jsonl", "output": tmp_path / "out.jsonl"}
    assert chunk_rows_for(build_options(opts)) == DEFAULT_CHUNK_ROWS["local"]
    assert chunk_rows_for(build_options({**opts, "engine": "ray"})) == DEFAULT_CHUNK_ROWS["ray"]
    assert chunk_rows_for(build_options({**opts, "engine": "ray", "chunk_rows": 77})) == 77


def test_matches_transformers_pipeline_with_clean_none(tmp_path, tiny_model, sample_rows):
    from transformers import pipeline

    texts = [r["text"] for r in sample_rows[:80]] + ["good", "bad bad bad", "it was fine"]
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out.jsonl"
    result = run_cli("classify", source, "-o", out, "--model", tiny_model, "--clean", "none", "--mode", "gpu-only",
                     "--batch-size", "16", "--no-dedup", "--precision", "fp32", "-q")
    assert result.exit_code == 0, result.output
    ours = read_rows(out)
    reference = pipeline("text-classification", model=str(tiny_model), device="cpu")(texts, batch_size=1, truncation=True)
    assert [r["label"] for r in ours] == [r["label"] for r in reference]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(ours, reference)) < 1e-4


def test_keep_text_and_all_scores(tmp_path, tiny_model):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "good food"}, {"text": "awful"}])
    out = tmp_path / "out.jsonl"
    result = run_cli("classify", source, "-o", out, "--model", tiny_model, "--mode", "gpu-only", "--keep-text",
                     "--all-scores", "-q")
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [0, 1] and rows[0]["text"] == "good food"
    assert abs(rows[0]["score_NEGATIVE"] + rows[0]["score_POSITIVE"] - 1) < 1e-9


def test_duplicate_texts_reuse_predictions(tmp_path, tiny_model):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in ["good food", "awful", "good  food"] * 20])
    report = tmp_path / "r.json"
    result = run_cli("classify", source, "-o", tmp_path / "o.jsonl", "--model", tiny_model, "--mode", "gpu-only",
                     "--report", report, "-q")
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "o.jsonl")
    assert len({r["score"] for r in rows}) == 2  # "good  food" cleans to "good food"
    assert load_report(report).extra["dedup_hit_rate"] == pytest.approx(58 / 60)


def test_missing_input_is_one_line_exit_2(tmp_path, tiny_model):
    result = run_cli("classify", tmp_path / "nope.jsonl", "-o", tmp_path / "o.jsonl", "--model", tiny_model)
    assert result.exit_code == 2
    assert "no such file" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_bad_model_folder_is_a_clear_error(tmp_path):
    result = run_cli("classify", SAMPLE_JSONL, "-o", tmp_path / "o.jsonl", "--model", tmp_path / "none")
    assert result.exit_code == 2 and "model folder" in result.output


def test_models_lists_the_folder(tmp_path, tiny_model):
    result = run_cli("models", "--search", tiny_model.parent)
    assert result.exit_code == 0 and "tiny-bert" in result.output
