"""The block normaliser gives exactly what the one-text functions give, on text made to find differences.

``split_sentences`` and ``normalize_text`` are the reference (the implementation the trainer used one
sentence at a time before the block form); ``normalized_sentences``, ``normalize_lines`` and
``normalize_block`` must agree with them on every input, including the ones that take their slower ways
(non-ASCII lines, a "\\r" or "\\n" inside an utterance).
"""

from __future__ import annotations

import random
import re
import sys
import unicodedata

import pytest

from voxtrain_trainer.ml.normalize import normalize_block, normalize_lines, normalize_text
from voxtrain_trainer.ml.sentences import _NO_BREAK_AFTER, normalized_sentences, split_sentences

# fmt: off
_WORDS = ["the", "patient", "was", "given", "a", "dose", "of", "medication", "and", "doctor", "said", "it", "pain"]
_PIECES = [
    # numbers of every shape the number passes read
    "12", "12 mg", "3.5", ".5", "0.25", "1.2.3", "$3.50", "$ 3", "$1", "$10.01", "$3.5", "50%", "50 %", "2.5%",
    "1,000", "1,000,000", "12,34", "2nd", "21ST", "3rd", "11th", "10:30", "7:00", "10:05", "25:99", "1:2:3",
    "2-3", "2 - 3", "10\u201320", "-5", "x-5", ".-5", "COVID19", "19covid", "a1b2", "007", "1234567890123456",
    "\uff11\uff12", "\u0663\u0664", "\u00b2", "\u2460", "\u00bd", "\u216b", "v2.0", "3.5.",
    # abbreviations, initials and sentence ends
    "Dr.", "DR.", "dr.", "Mr.", "MRS.", "Mrs.", "ms.", "St.", "vs.", "e.g.", "E.G.", "i.e.", "No.", "approx.",
    "Jr.", "Prof.", "fig.", "Dept.", "Inc.", "LTD.", "co.", "etc.", "i.e.g.", "J.", "j.", "\u0130.", "\u212a.",
    "\u00e9.", "Mr\u017f.", "\u0131.e.", "x.", "U.S.A.", "end.", "end!", "end?", "end?!", "wait...", "3.",
    # apostrophes, unicode, case and symbols
    "don't", "it\u2019s", "\u2018quoted\u2019", "rock'n'roll", "'tis", "o'", "''", "a''b", "`x`", "\u00b4s",
    "\u2032", "caf\u00e9", "NA\u00cfVE", "\ufb01ne", "Stra\u00dfe", "\u0130stanbul", "\u03a3\u039f\u03a3",
    "\u00c5ngstr\u00f6m", "e\u0301", "\u0301x", "A&B", "1+1", "me@home", "_under_", "tab\tbed", "\u00a0",
    "(the 3rd dose)", "\u2014", "\u2026", "x\u00b7y", "\u0644\u0627", "\u4e2d\u6587",
]
_SPACES = [" ", " ", " ", "  ", "\t", "\u00a0", "\u3000", "\u2028", "\x0b", "\x0c", "\x1c", "\x85", "\u2003"]
# fmt: on


def _utterance(rng: random.Random, ascii_only: bool = False) -> str:
    pieces = [p for p in _PIECES if p.isascii()] if ascii_only else _PIECES
    spaces = [s for s in _SPACES if s.isascii()] if ascii_only else _SPACES
    parts = []
    for _ in range(rng.randint(0, 14)):
        parts.append(rng.choice(pieces) if rng.random() < 0.4 else rng.choice(_WORDS))
        if rng.random() < 0.15:
            parts[-1] += rng.choice(".!?,;:")
    text = ""
    for part in parts:
        text += part + rng.choice(spaces)
    return rng.choice(["", " ", "\t"]) + text.strip(rng.choice(["", " "])) + rng.choice(["", " ", "."])


def _reference(utterances: list[str]) -> list[str]:
    return [n for u in utterances for s in split_sentences(u) if (n := normalize_text(s))]


@pytest.mark.parametrize("seed", range(6))
def test_sentences_of_many_utterances_are_those_of_one_at_a_time(seed: int) -> None:
    rng = random.Random(seed)
    utterances = [_utterance(rng, ascii_only=seed % 2 == 1) for _ in range(6000)]  # several blocks
    assert sum(map(len, utterances)) > 2 * (1 << 16)
    assert list(normalized_sentences(utterances)) == _reference(utterances)


def test_utterances_with_line_breaks_of_their_own_are_read_one_by_one_with_the_same_result() -> None:
    rng = random.Random(7)
    utterances = [_utterance(rng) for _ in range(300)]
    utterances[10] = "First line. Dr.\nSmith 12\ron the 2nd."
    utterances[200] += "\r\n"
    assert list(normalized_sentences(utterances)) == _reference(utterances)


@pytest.mark.parametrize("seed", range(3))
def test_normalize_lines_is_normalize_text_of_each(seed: int) -> None:
    rng = random.Random(100 + seed)
    texts = [_utterance(rng) for _ in range(4000)]
    assert normalize_lines(texts) == [normalize_text(text) for text in texts]
    texts.append("a text\nwith a line break")
    assert normalize_lines(texts) == [normalize_text(text) for text in texts]
    assert normalize_lines([]) == []
    assert normalize_block("Dr. Who 2nd\n\nCAF\u00c9 \u00bd") == "doctor who second\n\ncafé one two"


def test_case_insensitive_abbreviations_with_other_letters_are_read_not_refused() -> None:
    # Case-insensitive matching takes "ſ" for "s" and "ı" for "i"; the old lookup by lower case failed on them.
    assert normalize_text("Mr\u017f. Smith, \u0131.e. him") == "missus smith that is him"


def test_what_the_block_passes_assume_of_unicode_holds() -> None:
    """Facts about every code point that make the block form exact (see normalize.py and sentences.py)."""
    every = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    # NFKC makes no line break of anything else, so it cannot join or split lines.
    assert [c for c in every if c not in "\n\r" and set(unicodedata.normalize("NFKC", c)) & {"\n", "\r"}] == []
    # Lower case of a non-ASCII character is an ASCII letter only for the Kelvin sign, in no no-break word.
    assert [c for c in every if not c.isascii() and re.fullmatch("[a-z]+", c.lower())] == ["\u212a"]
    assert not any("k" in word for word in _NO_BREAK_AFTER)
    # A letter is an initial ("x.") unless its lower case is more than one character: only "İ".
    initial, letter = re.compile(r"[^\W\d_]\."), re.compile(r"[^\W\d_]")
    assert [c for c in every if bool(initial.fullmatch((c + ".").lower())) != bool(letter.fullmatch(c))] == ["\u0130"]
