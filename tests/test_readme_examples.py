"""The README's jq examples run as written (issue 24: `jq -c '{id, label}'` is a syntax error in jq 1.6, where
`label` is a keyword), on rows shaped like classify's output."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import REPO

ROW = {"id": "r1", "label": "positive", "score": 0.93, "confidence": "high", "word_count": 4, "truncated": False}
SUMMARY = {"rows_out": 1, "pay_per_use": {"mixed": 0.01, "gpu_only": 0.02, "savings": 0.01}}


def jq_filters() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"\| jq (?:-c )?'([^']+)'|\| jq (?:-c )?(\.[\w.]+)", text)


def test_the_readme_has_jq_examples():
    assert len(jq_filters()) >= 2


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_every_jq_example_in_the_readme_runs():
    for quoted, bare in jq_filters():
        program = quoted or bare
        for sample in (ROW, SUMMARY):
            done = subprocess.run(["jq", "-c", program], input=json.dumps(sample), capture_output=True, text=True,
                                  timeout=30, check=False)
            assert done.returncode == 0, (program, done.stderr)
    rows = subprocess.run(["jq", "-c", "{id: .id, label: .label}"], input=json.dumps(ROW), capture_output=True,
                          text=True, timeout=30, check=True)
    assert json.loads(rows.stdout) == {"id": "r1", "label": "positive"}
