import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedclf.core.preprocess import (
    URL_TOKEN,
    clean_text,
    concat_batches,
    count_text,
    make_tokenizer,
    normalize_text,
    preprocess_texts,
    select_rows,
)
from mixedclf.runtime.pool import slices


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    spec = resolve_model(tiny_model)
    return make_tokenizer(tokenizer_json_and_pad_id(spec)[0], 16)


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("<b>Great</b> phone &amp; case!", "Great phone & case!"),
        ("see https://example.com/a?b=1 now", f"see {URL_TOKEN} now"),
        ("visit www.example.org, ok", f"visit {URL_TOKEN} ok"),
        ("ﬁne ＡＢＣ", "fine ABC"),  # ligature and fullwidth folded by NFKC
        ("bell\x07 zero\u200bwidth", "bell zerowidth"),
        ("  tabs\tand\n\nnewlines\r\n ", "tabs and newlines"),
        ("a\x00b", "ab"),
        ("1 &lt; 2", "1 < 2"),
        ("<!-- hidden --> shown", "shown"),
        ("plain text", "plain text"),
    ],
)
def test_clean_text(raw, cleaned):
    assert clean_text(raw) == cleaned


def test_clean_keeps_angle_brackets_that_are_not_tags():
    assert clean_text("3 < 5 and 7 > 2") == "3 < 5 and 7 > 2"


def test_normalize_is_nfkc():
    assert normalize_text("Ⅻ ½") == "XII 1⁄2"


@pytest.mark.parametrize(
    "text, words, sentences",
    [
        ("One. Two! Three?", 3, 3),
        ("no end punctuation", 3, 1),
        ("First one. then a trailing clause", 6, 2),
        ('He said "wow!" Then left.', 5, 2),
        ("don't stop", 2, 1),
        ("", 0, 0),
        ("...", 0, 0),
    ],
)
def test_count_text(text, words, sentences):
    assert count_text(text) == (words, sentences, len(text))


def test_preprocess_flags_truncation_and_keeps_order(tokenizer):
    texts = ["good", "bad " * 40, "very good food"]
    batch = preprocess_texts(texts, tokenizer)
    assert batch.lengths.tolist()[0] == 3  # [CLS] good [SEP]
    assert batch.lengths[1] == 16 and batch.truncated.tolist() == [False, True, False]
    assert batch.token_ids.dtype == np.int32 and len(batch.token_ids) == batch.lengths.sum()
    assert batch.row_ids(2).tolist()[0] == batch.row_ids(0).tolist()[0]  # both start with [CLS]
    assert batch.word_count.tolist() == [1, 40, 3]


def test_clean_none_passes_text_through(tokenizer):
    raw = "<b>good</b>"
    assert preprocess_texts([raw], tokenizer, clean="none").cleaned == [raw]
    assert preprocess_texts([raw], tokenizer, clean="standard").cleaned == ["good"]


def test_select_rows_matches_original(tokenizer):
    batch = preprocess_texts(["good", "bad food here", "it was fine"], tokenizer)
    picked = select_rows(batch, np.array([2, 0]))
    assert picked.cleaned == ["it was fine", "good"]
    assert picked.row_ids(0).tolist() == batch.row_ids(2).tolist()
    assert picked.row_ids(1).tolist() == batch.row_ids(0).tolist()


def test_a_chunk_cut_into_slices_preprocesses_to_the_same_batch(tokenizer):
    texts = [f"text {i} " + "good " * (i % 7) for i in range(11)]
    parts = slices(texts, workers=3, min_rows=2)
    assert len(parts) == 3 and [t for part in parts for t in part] == texts
    assert slices(texts, workers=8, min_rows=5) == [texts[:6], texts[6:]]  # no slice under min_rows
    assert slices(texts, workers=1) == [texts]
    assert slices([], workers=4) == [[]]  # a chunk whose rows were all rejected still goes through
    whole = preprocess_texts(texts, tokenizer)
    joined = concat_batches([preprocess_texts(part, tokenizer) for part in parts])
    assert joined.cleaned == whole.cleaned
    for name in ("token_ids", "lengths", "truncated", "word_count", "sentence_count", "char_count"):
        assert np.array_equal(getattr(joined, name), getattr(whole, name)), name


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_preprocess_never_raises_and_respects_the_limit(tokenizer, text):
    batch = preprocess_texts([text], tokenizer)
    assert len(batch) == 1
    assert 2 <= batch.lengths[0] <= 16
    cleaned = batch.cleaned[0]
    assert cleaned == cleaned.strip() and "  " not in cleaned
    assert all(ch.isprintable() for ch in cleaned)


def test_tiny_model_tokenizer_knows_its_words(tokenizer):
    """Guards the fixture itself: a tokenizer that maps every word to [UNK] would make other tests hollow."""
    ids = tokenizer.encode("good food").ids
    assert len(set(ids[1:-1])) == 2 and 1 not in ids  # 1 is [UNK]


# The cleaning and counting before their fast paths (a URL scan only where a URL can be, whitespace collapsed by
# str.split, the end punctuation read from the end): the fast ones must give the very same strings and counts.
_URL_PATTERN = __import__("re").compile(r"(?:https?://|ftp://|www\.)[^\s<>\"']+", __import__("re").IGNORECASE)


def _reference_clean(text: str) -> str:
    import html
    import re

    from mixedclf.core import preprocess

    text = normalize_text(text)
    if "<" in text:
        text = preprocess._TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    text = _URL_PATTERN.sub(f" {URL_TOKEN} ", text)
    text = preprocess._drop_controls(text)
    return re.sub(r"\s+", " ", text).strip()


def _reference_count(text: str) -> tuple[int, int, int]:
    import re

    from mixedclf.core import preprocess

    words = len(preprocess._WORD.findall(text))
    if not words:
        return 0, 0, len(text)
    sentences = len(preprocess._SENTENCE_END.findall(text))
    if not re.search(r"[.!?…]+[\W_]*$", text):
        sentences += 1
    return words, sentences, len(text)


_TRICKY = st.sampled_from(
    ["a", "Z", "é", "ß", "İ", "K", "_", "1", "٣", " ", "  ", "\t", "\n", "\r\n", "\x0b", "\x1c", "\x1f", "\x85", "\xa0",
     "\u2000", "\u2028", "\u3000", "\u200b", "\x00", "\x07", ".", "!", "?", "…", "...", "?!", ")", "\"", "'", "’", "-",
     ":", "//", "://", "http", "HTTPS", "Ftp", "www", "WWW.", "wWw.", "ｗｗｗ.", "<b>", "</p>", "<!-- x -->", "&amp;",
     "&lt;", "&#119;", "&#x77;ww.", "http://x.y/z?q=1", "www.example.org", "ﬁ", "Ａ"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_TRICKY, max_size=40).map("".join))
def test_cleaning_and_counting_match_their_reference_patterns(text):
    assert clean_text(text) == _reference_clean(text)
    assert count_text(text) == _reference_count(text)
    cleaned = clean_text(text)
    assert count_text(cleaned) == _reference_count(cleaned)
