"""Split utterance text into sentences and normalise them.

Contract: :func:`normalized_sentences` yields non-empty normalised sentences (see
:mod:`normalize`); a sentence ends at ``.``, ``!`` or ``?`` followed by white space, except after
common abbreviations and single-letter initials, so "Dr. Smith" stays one sentence and "3.5" is
never split.

:func:`split_sentences` says it for one text; :func:`normalized_sentences` does the same for many utterances
at once: they are joined by "\\n", sentence ends are marked in two passes of a regular expression, and the
block is normalised by :func:`normalize.normalize_block`, which gives the same sentences
(``tests/trainer/test_normalize_batch.py``) at many times the speed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator

from voxtrain_trainer.ml.normalize import normalize_block, normalize_text

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
_INITIAL = re.compile(r"[^\W\d_]\.")


def split_sentences(text: str) -> list[str]:
    """Split raw ``text`` into raw sentences (see module contract)."""
    pieces = _BOUNDARY.split(text.strip())
    sentences: list[str] = []
    carry = ""
    for piece in pieces:
        current = f"{carry} {piece}".strip() if carry else piece
        last = current.rsplit(None, 1)[-1].lower() if current else ""
        if last in _NO_BREAK_AFTER or _INITIAL.fullmatch(last):
            carry = current
            continue
        sentences.append(current)
        carry = ""
    if carry:
        sentences.append(carry)
    return sentences


# For a block of utterances joined by "\n" (none with a "\r" of its own): first the white space after each
# ".", "!" or "?" becomes "\r" (a sentence end), then an end right after a word that does not end a sentence
# goes back to a space. Such a word, lower-cased as split_sentences does, is in _NO_BREAK_AFTER or an
# initial: the only characters whose lower case is an ASCII letter are the ASCII letters and the Kelvin sign
# (in none of the words), and a letter is an initial unless its lower case is two characters ("İ"). The
# words are looked for behind each "\r" (one lookbehind per length): scanning for a "\r" is fast.
_ENDS = tuple((mark, re.compile(rf"{re.escape(mark)}[^\S\n]+"), f"{mark}\r") for mark in ".!?")


def _any_case(words: Iterable[str]) -> str:
    return "|".join("".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word) for word in words)


_NOT_AN_END = re.compile(
    r"\r(?:"
    + "|".join(
        rf"(?<=(?<!\S)(?:{_any_case(sorted(w for w in _NO_BREAK_AFTER if len(w) == size))})\r)"
        for size in sorted({len(w) for w in _NO_BREAK_AFTER})
    )
    + r"|(?<=(?<!\S)[^\W\d_\u0130]\.\r))"
)
_BATCH_CHARS = 1 << 16


def _sentence_lines(utterances: list[str]) -> str | None:
    """The sentences of ``utterances``, one a line, as split_sentences splits them; None if they contain a line
    break (then they go one by one)."""
    block = "\n".join(map(str.strip, utterances))
    if block.count("\n") != len(utterances) - 1 or "\r" in block:
        return None
    for mark, end, marked in _ENDS:  # one pattern a mark: each starts with a character to look for
        if mark in block:
            block = end.sub(marked, block)
    if "\r" not in block:
        return block
    return _NOT_AN_END.sub(" ", block).replace("\r", "\n")


def _normalized(utterances: list[str]) -> list[str]:
    block = _sentence_lines(utterances)
    if block is None:
        return [n for utterance in utterances for s in split_sentences(utterance) if (n := normalize_text(s))]
    return list(filter(None, normalize_block(block).split("\n")))


def normalized_sentence_blocks(utterances: Iterable[str]) -> Iterator[list[str]]:
    """:func:`normalized_sentences` in lists (non-empty) of the sentences of about 64 KB of utterances each."""
    batch: list[str] = []
    size = 0
    for utterance in utterances:
        batch.append(utterance)
        size += len(utterance)
        if size >= _BATCH_CHARS:
            if sentences := _normalized(batch):
                yield sentences
            batch, size = [], 0
    if batch and (sentences := _normalized(batch)):
        yield sentences


def normalized_sentences(utterances: Iterable[str]) -> Iterator[str]:
    """Yield the non-empty normalised sentences of every utterance, in order (read a block of them at a time)."""
    return itertools.chain.from_iterable(normalized_sentence_blocks(utterances))
