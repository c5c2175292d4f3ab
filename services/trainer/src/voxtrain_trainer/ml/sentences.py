"""Split utterance text into sentences and normalise them.

Contract: :func:`normalized_sentences` yields non-empty normalised sentences (see
:mod:`normalize`); a sentence ends at ``.``, ``!`` or ``?`` followed by white space, except after
common abbreviations and single-letter initials, so "Dr. Smith" stays one sentence and "3.5" is
never split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from voxtrain_trainer.ml.normalize import normalize_text

_BOUNDARY = re.compile(r"(?<=[.!?])\s+")
_NO_BREAK_AFTER = frozenset(
    [
        "dr.",
        "mr.",
        "mrs.",
        "ms.",
        "st.",
        "vs.",
        "e.g.",
        "i.e.",
        "no.",
        "approx.",
        "jr.",
        "sr.",
        "prof.",
        "fig.",
        "dept.",
        "inc.",
        "ltd.",
        "co.",
    ]
)


def split_sentences(text: str) -> list[str]:
    """Split raw ``text`` into raw sentences (see module contract)."""
    pieces = _BOUNDARY.split(text.strip())
    sentences: list[str] = []
    carry = ""
    for piece in pieces:
        current = f"{carry} {piece}".strip() if carry else piece
        last = current.rsplit(None, 1)[-1].lower() if current else ""
        if last in _NO_BREAK_AFTER or re.fullmatch(r"[^\W\d_]\.", last):
            carry = current
            continue
        sentences.append(current)
        carry = ""
    if carry:
        sentences.append(carry)
    return sentences


def normalized_sentences(utterances: Iterable[str]) -> Iterator[str]:
    """Yield the non-empty normalised sentences of every utterance, in order."""
    for utterance in utterances:
        for sentence in split_sentences(utterance):
            normalized = normalize_text(sentence)
            if normalized:
                yield normalized
