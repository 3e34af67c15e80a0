"""The output row: the input's columns as read (id first), the text when --keep-text, then the classifier's
columns, each named `--output-prefix` + its name. A classifier column never replaces an input column of the same
name (a column of gold labels called `label`, an id column called `score`): such a run is refused, naming the
clash and the option that renames the classifier's columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa

from mixedclf.errors import InputError

# The columns label_columns adds, before --all-scores' score_<label> ones.
BASE_OUTPUT_COLUMNS = ("label", "score", "confidence", "word_count", "sentence_count", "char_count", "token_count",
                       "truncated", "model")
PREFIX_HINT = "name the classifier's columns apart with --output-prefix, e.g. --output-prefix pred_ for pred_label"


def output_names(labels: Iterable[str], all_scores: bool, prefix: str = "") -> list[str]:
    names = list(BASE_OUTPUT_COLUMNS)
    if all_scores:
        names[3:3] = [f"score_{label}" for label in labels]
    return [prefix + name for name in names]


def _clash(name: str, role: str) -> InputError:
    return InputError(f"the {role} is named {name!r}, like a column the classifier writes: the output would "
                      "replace it", hint=PREFIX_HINT)


def check_option_names(id_field: str, text_field: str, keep_text: bool, labels: Iterable[str], all_scores: bool,
                       prefix: str = "") -> None:
    """The clashes the options alone show, before any row is read or the model loads."""
    names = set(output_names(labels, all_scores, prefix))
    if id_field in names:
        raise _clash(id_field, "id column (--id-field)")
    if keep_text and text_field in names:
        raise _clash(text_field, "text column kept by --keep-text (--text-field)")


def output_table(passthrough: pa.Table, columns: Mapping[str, pa.Array | pa.ChunkedArray], *, id_field: str,
                 text_field: str, texts: pa.Array | pa.ChunkedArray | None = None, prefix: str = "") -> pa.Table:
    """The rows as written: passthrough (id column first, the other input columns), the text when given, then
    the classifier's columns. InputError when one of them has the name of an input column."""
    table = passthrough
    if texts is not None:
        if text_field in table.column_names:
            raise _clash(text_field, "text column kept by --keep-text")
        table = table.append_column(text_field, texts)
    for name, values in columns.items():
        out = prefix + name
        if out in table.column_names:
            role = "id column (--id-field)" if out == id_field else (
                "text column kept by --keep-text" if texts is not None and out == text_field else "input column")
            raise _clash(out, role)
        table = table.append_column(out, values)
    return table
