"""Deterministic synthetic review-like texts for benchmarks and tests.

Stdlib + pyarrow only: this module must stay importable on machines and in
worker processes that never load torch.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from typing import Iterator, Union

__all__ = ["generate_texts", "write_jsonl"]

PathLike = Union[str, os.PathLike]

# Fragments are hand-written. Each slot has tens of options so that even a
# one-sentence text has ~10^5 combinations; that is what keeps the exact
# duplicate rate low at 100k texts without storing anything to dedupe against.

# Subjects are grouped by domain so one text stays about one kind of thing.
_SUBJECTS = {
    "product": [
        "the blender", "this phone case", "the headphones", "the desk lamp", "the backpack",
        "the kettle", "this vacuum", "the running shoes", "the charger", "the air fryer",
        "the keyboard", "this mattress", "the coffee grinder", "the rain jacket", "the monitor",
    ],
    "restaurant": [
        "the pasta", "the ramen", "our waiter", "the brunch menu", "the tasting menu",
        "the pizza", "the dessert", "the curry", "the wine list", "the takeout order",
        "the bread", "the service",
    ],
    "movie": [
        "the movie", "the sequel", "the soundtrack", "the lead actor", "the ending",
        "the plot", "the documentary", "the special effects", "the dialogue", "the pacing",
        "the cinematography", "the second half",
    ],
    "app": [
        "the app", "the latest update", "the login screen", "the sync feature", "the dark mode",
        "the notifications", "the search function", "the subscription", "the offline mode",
        "the widget", "the onboarding", "the settings page",
    ],
    "hotel": [
        "the hotel", "our room", "the front desk", "the breakfast buffet", "the pool",
        "the bed", "the location", "the shower", "the check-in", "the concierge",
        "the view", "the gym",
    ],
}
_SHARED_SUBJECTS = ["the delivery", "customer support", "the packaging", "the price", "the whole experience"]

_POS_OPINIONS = [
    "is excellent", "exceeded my expectations", "works perfectly", "is worth every penny",
    "made my week", "was a pleasant surprise", "is better than advertised", "feels premium",
    "was absolutely delicious", "was genuinely moving", "is fast and reliable", "was spotless",
    "was friendly and helpful", "is beautifully designed", "held up really well",
    "is easy to recommend", "was a joy", "delivers on every promise", "is surprisingly good",
    "was great value", "is my new favourite", "was flawless", "felt thoughtful and polished",
    "was warm and welcoming", "is solid and dependable", "blew me away", "was top notch",
    "really impressed us", "is a clear improvement", "was charming from start to finish",
    "does exactly what it should", "was cooked perfectly", "was gripping throughout",
    "is intuitive", "was quiet and comfortable", "is very well made", "was a total delight",
    "keeps getting better", "was a great choice", "was fresh and tasty",
]

_NEG_OPINIONS = [
    "is terrible", "broke after a week", "was a waste of money", "is painfully slow",
    "was cold and bland", "fell apart quickly", "is worse than advertised", "feels cheap",
    "was rude and dismissive", "was boring and predictable", "crashes constantly", "was filthy",
    "stopped working", "is badly designed", "was overpriced", "is impossible to recommend",
    "was a huge disappointment", "never arrived on time", "is full of bugs", "was noisy all night",
    "was undercooked", "made no sense", "drains the battery", "smelled odd", "was a letdown",
    "is flimsy", "was a mess", "ruined the evening", "is a step backwards", "was dull",
    "does not work as described", "leaked on day one", "dragged on forever", "is confusing",
    "was uncomfortable", "keeps logging me out", "was stale", "was greasy and salty",
    "is not worth the hassle", "made me regret buying it",
]

_MIXED_OPINIONS = [
    "is fine", "was okay", "is average at best", "was decent but forgettable",
    "has pros and cons", "is neither good nor bad", "was acceptable", "does the job",
    "was hit and miss", "is about what you would expect",
]

_OPENERS = [
    "", "", "", "", "Honestly,", "Overall,", "To be fair,", "Frankly,", "I think",
    "In my opinion,", "As expected,", "Surprisingly,", "Right away,", "After a while,",
    "For what it's worth,", "Long story short,", "My partner agrees that",
    "Everyone agreed", "Even my kids noticed", "I have to say",
]
_POS_OPENERS = ["Thankfully,", "Happily,", "Luckily,", "Good news:"]
_NEG_OPENERS = ["Sadly,", "Unfortunately,", "Annoyingly,", "Bad news:"]

_DETAILS = [
    "after {n} days of use", "on our {ord} visit", "for the price", "compared to the old one",
    "despite the hype", "given the reviews I had read", "at {n} in the evening",
    "with {n} people in our group", "on a busy Saturday", "during a {n}-night stay",
    "after the {ord} update", "straight out of the box", "on a long flight",
    "in the middle of winter", "for a {n}-hour session", "after {n} weeks",
    "on my {ord} try", "when it was on sale", "from the very first minute",
    "on a rainy Tuesday", "while travelling for work", "with the family",
]

_DOMAINS = sorted(_SUBJECTS)
_ORDINALS = ["first", "second", "third", "fourth", "fifth", "tenth"]

_EXTRAS_POS = [
    "I would happily buy it again.", "Five stars from me.", "Highly recommended.",
    "We are already planning to come back.", "Staff went out of their way to help.",
    "Setup took less than {n} minutes.", "It arrived a day early.", "Great value overall.",
    "I told all my friends about it.", "The little details make a difference.",
    "Worth the wait.", "No complaints at all.",
]

_EXTRAS_NEG = [
    "I asked for a refund.", "Never again.", "One star is generous.",
    "Support took {n} days to reply.", "Avoid if you can.", "The photos are misleading.",
    "We left after {n} minutes.", "I had to return it.", "Nobody apologised.",
    "The instructions were useless.", "It is going straight in the bin.",
    "Save your money.",
]

_EXTRAS_MIXED = [
    "Not sure I would go back.", "It is fine for the price, I suppose.",
    "Some parts were good, others not.", "Three stars feels right.",
    "Your mileage may vary.", "Hard to say more than that.",
]

_CLOSERS = [
    "", "", "", "", "Thanks!", "Just my two cents.", "Hope this helps.", "Edit: still true {n} months later.",
    "Would not change a thing.", "That's all.", "Make of that what you will.", "Cheers.",
]

# Rare decorations so downstream cleaning (HTML stripping, NFKC, URL masking)
# has something to do on synthetic data too; kept rare so most rows stay plain.
_DECORATIONS = [
    "<br/>", "<b>really</b>", "&amp; more", "see https://example.com/r/{n}",
    "www.example.org/item{n}", "\U0001F44D", "\U0001F621", "ｖｅｒｙ ｇｏｏｄ", "caf\u00e9 style",
    "e\ufb03cient", "  ", "\t",
]


def _fill(rng: random.Random, template: str) -> str:
    if "{n}" in template:
        template = template.replace("{n}", str(rng.randint(2, 48)))
    if "{ord}" in template:
        template = template.replace("{ord}", rng.choice(_ORDINALS))
    return template


def _sentence(
    rng: random.Random, subjects: list[str], opinions: list[str], openers: list[str]
) -> str:
    opener = rng.choice(openers)
    words = [opener] if opener else []
    words.append(rng.choice(subjects))
    words.append(rng.choice(opinions))
    if rng.random() < 0.55:
        words.append(_fill(rng, rng.choice(_DETAILS)))
    s = " ".join(words)
    return s[0].upper() + s[1:] + "."


def _text(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.45:
        main, extras, openers = _POS_OPINIONS, _EXTRAS_POS, _OPENERS + _POS_OPENERS
    elif r < 0.9:
        main, extras, openers = _NEG_OPINIONS, _EXTRAS_NEG, _OPENERS + _NEG_OPENERS
    else:
        main, extras, openers = _MIXED_OPINIONS, _EXTRAS_MIXED, _OPENERS
    subjects = _SUBJECTS[rng.choice(_DOMAINS)] + _SHARED_SUBJECTS

    # Exponential sentence count gives mostly short reviews plus a long tail,
    # which is what exercises padding/bucketing in the batcher.
    n_sent = 1 + min(int(rng.expovariate(1 / 1.6)), 9)
    parts = []
    for _ in range(n_sent):
        if parts and rng.random() < 0.35:
            parts.append(_fill(rng, rng.choice(extras)))
        elif parts and rng.random() < 0.1:
            # Occasional contrasting sentence so not every text is one-note.
            other = rng.choice((_POS_OPINIONS, _NEG_OPINIONS, _MIXED_OPINIONS))
            parts.append(_sentence(rng, subjects, other, _OPENERS))
        else:
            parts.append(_sentence(rng, subjects, main, openers))
    if len(" ".join(parts).split()) < 5:
        # Keep every text at five words or more: shorter ones are not review-like.
        parts.append(_fill(rng, rng.choice(extras)))
    closer = _fill(rng, rng.choice(_CLOSERS))
    if closer:
        parts.append(closer)
    if rng.random() < 0.05:
        i = rng.randrange(len(parts) + 1)
        parts.insert(i, _fill(rng, rng.choice(_DECORATIONS)))
    return " ".join(parts)


def generate_texts(n: int, seed: int = 0) -> Iterator[str]:
    """Yield ``n`` synthetic review texts; same ``(n, seed)`` gives the same texts."""
    # Validate here, not inside the generator, so a bad n fails at the call site.
    if n < 0:
        raise ValueError("n must be >= 0")
    return _iter_texts(n, seed)


def _iter_texts(n: int, seed: int) -> Iterator[str]:
    # A private Random keeps results independent of global random state.
    rng = random.Random(seed)
    for _ in range(n):
        yield _text(rng)


def write_jsonl(
    path: PathLike,
    n: int,
    seed: int = 0,
    text_field: str = "text",
    id_field: str = "id",
) -> PathLike:
    """Stream ``n`` rows ``{id_field: int, text_field: str}`` to a JSONL file."""
    # Write row by row so a 1M-row file costs no more memory than one row.
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for i, text in enumerate(generate_texts(n, seed)):
            f.write(json.dumps({id_field: i, text_field: text}, ensure_ascii=False))
            f.write("\n")
    return path


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/datagen.py", description=__doc__.splitlines()[0])
    p.add_argument("out", help="output .jsonl path")
    p.add_argument("--rows", type=int, required=True, help="number of rows")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    write_jsonl(args.out, args.rows, seed=args.seed)
    print(f"wrote {args.rows} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
