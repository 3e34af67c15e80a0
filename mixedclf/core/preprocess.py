"""CPU stage 1: normalize, clean, count and tokenize texts. Pure functions over batches.

Nothing here imports torch: this module is what the CPU worker processes load, so they start fast and hold
no model. Token ids leave as one flat int32 array plus lengths, which pickles in one copy instead of a
Python object per token.
"""

from __future__ import annotations

import html
import itertools
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from mixedclf.core.answers import AnswerReader, HeldAnswers

URL_TOKEN = "[URL]"
# A text is cut to its first MAX_TEXT_CHARS characters before it is cleaned, counted and tokenized (and the row
# flagged truncated): the model sees a few hundred tokens, and a 50 MB line must not cost gigabytes of copies.
# Word, sentence and character counts are of the kept part. Readers already hand over no more than one
# character past this, so the rest of a huge text is never copied between processes.
MAX_TEXT_CHARS = 1_000_000

_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>|<!--.*?-->", re.DOTALL)
_URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"']+", re.IGNORECASE)
_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
_END_MARKS = frozenset(".!?…")
# Control (Cc), format (Cf: zero-width, bidi marks), surrogates (Cs), private use (Co) and unassigned (Cn) code
# points carry no meaning for a classifier; whitespace controls become spaces before this runs.
_DROP_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
_WHITESPACE_CONTROLS = {"\t", "\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"}


def normalize_text(text: str) -> str:
    """NFKC folds fullwidth forms, ligatures and compatibility characters into what the tokenizer knows."""
    return unicodedata.normalize("NFKC", text)


def _drop_controls(text: str) -> str:
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in _WHITESPACE_CONTROLS:
            out.append(" ")
        elif unicodedata.category(ch) not in _DROP_CATEGORIES:
            out.append(ch)
    return "".join(out)


def clean_text(text: str) -> str:
    """Standard cleaning: NFKC, tags out, entities decoded, URLs as one token, controls out, whitespace collapsed."""
    text = normalize_text(text)
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    if "://" in text or "www." in text.lower():  # every URL the pattern knows has one of them: skip its scan
        text = _URL.sub(f" {URL_TOKEN} ", text)
    text = _drop_controls(text)
    # str.split() and the pattern's \s agree on what whitespace is (both Py_UNICODE_ISSPACE); split is 3x faster
    return " ".join(text.split())


def count_text(text: str) -> tuple[int, int, int]:
    """(words, sentences, characters); a non-empty text without end punctuation is one sentence."""
    words = len(_WORD.findall(text))
    if not words:
        return 0, 0, len(text)
    sentences = len(_SENTENCE_END.findall(text))
    # Ends with end punctuation when the run of characters that are not letters or digits at its end holds one
    # (the pattern [.!?…]+[\W_]*$, read from the end instead of tried at every position: linear, and 4x faster).
    end = len(text)
    while end and not text[end - 1].isalnum():
        end -= 1
    if _END_MARKS.isdisjoint(text[end:]):
        sentences += 1  # a trailing clause without end punctuation still counts
    return words, sentences, len(text)


@dataclass
class PreprocessedBatch:
    """Output of the preprocess stage for one batch of texts, in input order."""

    cleaned: list[str]
    token_ids: np.ndarray  # int32, all rows' ids concatenated
    lengths: np.ndarray  # int32, tokens per row (after truncation)
    truncated: np.ndarray  # bool
    word_count: np.ndarray  # int32
    sentence_count: np.ndarray  # int32
    char_count: np.ndarray  # int32
    # Rows an AnswerReader answered carry no token ids (their counts came with the answer): the mask, and their
    # logits (float32, rows x labels; zeros for rows not held). None: every row was tokenized.
    held: np.ndarray | None = None
    held_logits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    def row_ids(self, i: int) -> np.ndarray:
        offsets = self.offsets
        return self.token_ids[offsets[i] : offsets[i + 1]]

    @property
    def offsets(self) -> np.ndarray:
        """Where each row's ids start in token_ids (a held row has none)."""
        lengths = self.lengths if self.held is None else np.where(self.held, 0, self.lengths)
        return np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))


def make_tokenizer(tokenizer_json: str, max_length: int):
    """A tokenizers.Tokenizer from its JSON, truncating to max_length and never padding (the batcher pads)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def tokenize(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # encode_batch_fast (tokenizers >= 0.20) skips character offsets, which nothing here needs: ~40% less time.
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    encodings = encode(texts) if texts else []
    ids = [e.ids for e in encodings]  # each .ids access builds a new list: take it once
    lengths = np.fromiter(map(len, ids), dtype=np.int32, count=len(ids))
    truncated = np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=len(encodings))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum()))
    return flat, lengths, truncated


def preprocess_texts(texts: list[str], tokenizer, clean: str = "standard",
                     reader: AnswerReader | None = None) -> PreprocessedBatch:
    """The whole CPU stage for a batch. With clean="none" texts reach the tokenizer untouched (counts still made).
    With `reader`, rows it has answers for are not tokenized (a row cut to MAX_TEXT_CHARS always is: the answer
    does not know the cut)."""
    cut = np.fromiter((len(t) > MAX_TEXT_CHARS for t in texts), dtype=bool, count=len(texts))
    if cut.any():
        texts = [t[:MAX_TEXT_CHARS] for t in texts]
    cleaned = [clean_text(t) for t in texts] if clean == "standard" else list(texts)
    counts = np.array([count_text(t) for t in cleaned], dtype=np.int32).reshape(-1, 3)
    found = reader.read(cleaned) if reader is not None and cleaned else None
    if found is not None:
        keep = ~cut[found.rows]
        found = HeldAnswers(found.rows[keep], found.logits[keep], found.tokens[keep])
    if found is None or not len(found.rows):
        flat, lengths, truncated = tokenize(tokenizer, cleaned)
        return PreprocessedBatch(cleaned, flat, lengths, truncated | cut, counts[:, 0], counts[:, 1], counts[:, 2])
    held = np.zeros(len(cleaned), dtype=bool)
    held[found.rows] = True
    todo = np.flatnonzero(~held)
    flat, todo_lengths, todo_truncated = tokenize(tokenizer, [cleaned[i] for i in todo])
    lengths = np.empty(len(cleaned), dtype=np.int32)
    lengths[todo], lengths[found.rows] = todo_lengths, found.tokens
    truncated = np.zeros(len(cleaned), dtype=bool)  # a store keeps the token count of untruncated rows only
    truncated[todo] = todo_truncated
    held_logits = np.zeros((len(cleaned), found.logits.shape[1]), dtype=np.float32)
    held_logits[found.rows] = found.logits
    return PreprocessedBatch(cleaned, flat, lengths, truncated | cut, counts[:, 0], counts[:, 1], counts[:, 2],
                             held, held_logits)


def concat_batches(batches: list[PreprocessedBatch]) -> PreprocessedBatch:
    """One batch holding the rows of several, in order (slices of a chunk preprocessed by different workers)."""
    if len(batches) == 1:
        return batches[0]
    held = held_logits = None
    some = next((b.held_logits for b in batches if b.held_logits is not None), None)
    if some is not None:
        held = np.concatenate([b.held if b.held is not None else np.zeros(len(b), bool) for b in batches])
        held_logits = np.concatenate([b.held_logits if b.held_logits is not None
                                      else np.zeros((len(b), some.shape[1]), np.float32) for b in batches])
    ids, lengths, truncated, words, sentences, chars = (
        np.concatenate([getattr(b, name) for b in batches])
        for name in ("token_ids", "lengths", "truncated", "word_count", "sentence_count", "char_count"))
    return PreprocessedBatch([text for b in batches for text in b.cleaned], ids, lengths, truncated, words, sentences,
                             chars, held, held_logits)


def select_rows(batch: PreprocessedBatch, rows: np.ndarray) -> PreprocessedBatch:
    """A batch of only the given rows, in the given order."""
    offsets = batch.offsets
    ids = [batch.token_ids[offsets[r] : offsets[r + 1]] for r in rows]
    return PreprocessedBatch(
        [batch.cleaned[r] for r in rows],
        np.concatenate(ids).astype(np.int32) if ids else np.zeros(0, np.int32),
        batch.lengths[rows],
        batch.truncated[rows],
        batch.word_count[rows],
        batch.sentence_count[rows],
        batch.char_count[rows],
        None if batch.held is None else batch.held[rows],
        None if batch.held_logits is None else batch.held_logits[rows],
    )
