"""The one text normaliser shared by LM training, evaluation and transcription.

Contract of :func:`normalize_text`: the result is lowercase words separated by single spaces,
each word made of letters with apostrophes only inside it ("don't", "patient's"); digits are
spelled out where a reading is clear ("12" -> "twelve", "3.5" -> "three point five", "2nd" ->
"second", "50%" -> "fifty percent", "$3.50" -> "three dollars fifty cents"); every other
character is a word separator. The same input always gives the same output, and applying it
twice changes nothing.

Speed: :func:`normalize_lines` gives ``[normalize_text(t) for t in texts]`` for many texts at once. The
texts are joined by "\\n" and every pass (Unicode normalisation, abbreviations, numbers, case, words) runs
once over the whole block at C speed; the passes' patterns never reach across a "\\n", so each text comes
out as it would alone (``tests/trainer/test_normalize_batch.py`` compares both on a varied corpus), for
2.4-3.4x less CPU (``bench/trainer/NORMALIZE_RESULTS.md``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence

from voxtrain_trainer.ml import numbers

_APOSTROPHE_CHARS = "\u2019\u2018\u02bc\u0060\u00b4\u2032"
_APOSTROPHES = str.maketrans(dict.fromkeys(_APOSTROPHE_CHARS, "'"))
_APOSTROPHE = re.compile(f"[{_APOSTROPHE_CHARS}]")

_ABBREVIATIONS = {
    "e.g.": " for example ",
    "i.e.": " that is ",
    "dr.": " doctor ",
    "mr.": " mister ",
    "mrs.": " missus ",
    "vs.": " versus ",
    "etc.": " et cetera ",
}
_ABBREVIATION_NAMES = {"eg": "e.g.", "ie": "i.e.", "dr": "dr.", "mr": "mr.", "mrs": "mrs.", "vs": "vs.", "etc": "etc."}
# Named groups, not ``m.group(0).lower()``: case-insensitive matching also takes "ſ" for "s" and "ı" for "i".
_ABBREVIATION = re.compile(
    r"\b(?:" + "|".join(f"(?P<{name}>{re.escape(word)})" for name, word in _ABBREVIATION_NAMES.items()) + ")", re.I
)
_HAS_DIGIT = re.compile(r"\d")
_SYMBOLS = (("&", " and "), ("+", " plus "), ("@", " at "))
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
_WORD_OR_BREAK = re.compile(rf"{_WORD.pattern}|\n")


@functools.lru_cache(maxsize=1 << 14)
def _cardinal(digits: str) -> str:
    """`numbers.cardinal` with spaces around; most numbers in text recur ("1", "2", "10", "2024")."""
    return f" {numbers.cardinal(digits)} "


@functools.lru_cache(maxsize=1 << 12)
def _ordinal(digits: str) -> str:
    return f" {numbers.ordinal(digits)} "


def _abbreviation(m: re.Match[str]) -> str:
    return _ABBREVIATIONS[_ABBREVIATION_NAMES[m.lastgroup or ""]]


def _currency(m: re.Match[str]) -> str:
    dollars, cents = m.group(1), m.group(2)
    words = f" {numbers.cardinal(dollars)} {'dollar' if dollars == '1' else 'dollars'}"
    if cents and int(cents):
        words += f" {numbers.cardinal(str(int(cents)))} {'cent' if cents == '01' else 'cents'}"
    return words + " "


def _clock(m: re.Match[str]) -> str:
    hour, minute = m.group(1), m.group(2)
    if int(hour) > 24 or int(minute) > 59:
        return f" {numbers.cardinal(hour)} {numbers.cardinal(minute)} "
    if minute == "00":
        return f" {numbers.cardinal(hour)} o'clock "
    if minute.startswith("0"):
        return f" {numbers.cardinal(hour)} oh {numbers.cardinal(minute[1])} "
    return f" {numbers.cardinal(hour)} {numbers.cardinal(minute)} "


def _decimal(m: re.Match[str]) -> str:
    integer, fraction = m.group(1), m.group(2)
    if not integer:
        return f" point {numbers.digits_to_words(fraction)} "
    return f" {numbers.decimal(integer, fraction)} "


_Pass = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]


_NUMBER_PASSES: tuple[_Pass, ...] = (
    (re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), ""),  # thousands separators
    (re.compile(r"\$\s?(\d+)(?:\.(\d\d))?(?![\d.])"), _currency),
    (re.compile(r"(\d+(?:\.\d+)?)\s?%"), r"\1 percent"),
    (re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.I), lambda m: _ordinal(m.group(1))),
    (re.compile(r"\b(\d{1,2}):(\d\d)\b"), _clock),
    (re.compile(r"(\d*)\.(\d+)"), _decimal),
    (re.compile(r"(?<=\d)\s?[-\u2013]\s?(?=\d)"), " to "),  # ranges
    (re.compile(r"(?<![\w.])-(?=\d)"), " minus "),
    (re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])"), " "),  # "covid19" -> "covid 19"
    (re.compile(r"\d+"), lambda m: _cardinal(m.group(0))),
)
# The same passes for lines joined by "\n", each pattern matching exactly where the one above does on each
# line, written to start with a character rather than an assertion (a lookbehind, "\b") so that the regular
# expression engine skips ahead to where a match can start; a gap is white space but "\n", so no pass
# joins two lines. The letter-digit pass is left out: the last pass puts spaces around every number anyway.
_LINE_NUMBER_PASSES: tuple[_Pass, ...] = (
    (re.compile(r",(?<=\d,)(?=\d{3}(?!\d))"), ""),
    (re.compile(r"\$[^\S\n]?(\d+)(?:\.(\d\d))?(?![\d.])"), _currency),
    (re.compile(r"(\d+(?:\.\d+)?)[^\S\n]?%"), r"\1 percent"),
    (re.compile(r"(\d(?<!\w\d)\d*)(st|nd|rd|th)\b", re.I), lambda m: _ordinal(m.group(1))),
    (re.compile(r"(\d(?<!\w\d)\d?):(\d\d)\b"), _clock),
    (re.compile(r"(\d*)\.(\d+)"), _decimal),
    (re.compile(r"(?<=\d)[^\S\n]?[-\u2013][^\S\n]?(?=\d)"), " to "),
    (re.compile(r"-(?<![\w.]-)(?=\d)"), " minus "),
    (re.compile(r"\d+"), lambda m: _cardinal(m.group(0))),
)


def _spell_numbers(text: str, passes: tuple[_Pass, ...] = _NUMBER_PASSES) -> str:
    for pattern, replacement in passes:
        text = pattern.sub(replacement, text)
    return text


def normalize_text(text: str) -> str:
    """Normalise ``text`` for the LM, the lexicon, WER and transcripts (see module contract)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    if "." in text:
        text = _ABBREVIATION.sub(_abbreviation, text)
    if _HAS_DIGIT.search(text):  # most text has no digits: skip the number passes
        text = _spell_numbers(text)
    text = text.casefold()
    for symbol, replacement in _SYMBOLS:
        text = text.replace(symbol, replacement)
    return " ".join(_WORD.findall(text))


def normalize_words(text: str) -> list[str]:
    """:func:`normalize_text` as a list of words."""
    return normalize_text(text).split()


def normalize_lines(texts: Sequence[str]) -> list[str]:
    """``[normalize_text(text) for text in texts]``, computed for all of them at once (see module contract)."""
    if not texts:
        return []
    joined = "\n".join(texts)
    if joined.count("\n") != len(texts) - 1:  # a text with a line break of its own: one by one
        return [normalize_text(text) for text in texts]
    return normalize_block(joined).split("\n")


def normalize_block(text: str) -> str:
    """Each line of ``text`` (lines end at "\\n" only) normalised as :func:`normalize_text` does, the "\\n" kept.

    ASCII lines (most English text) take a shorter way than the others: they are in NFKC already, their case
    folds byte by byte and their words are found with a byte table; lines with other characters go through
    the same passes as :func:`normalize_text`. Either way only lines with digits go through the number passes.
    """
    if text.isascii():
        return _ascii_block(text)
    lines = text.split("\n")
    wide = [i for i, line in enumerate(lines) if not line.isascii()]
    if len(wide) == len(lines):
        return _general_block(text)
    _replace_lines(lines, wide, _general_block)
    _replace_lines(lines, [i for i, line in enumerate(lines) if line.isascii()], _ascii_block)
    return "\n".join(lines)


def _replace_lines(lines: list[str], indexes: list[int], transform: Callable[[str], str]) -> None:
    """``lines[i]`` for each ``i`` of ``indexes`` replaced by its transform, all of them done as one block."""
    done = transform("\n".join([lines[i] for i in indexes])).split("\n")
    for i, line in zip(indexes, done, strict=True):
        lines[i] = line


def _general_block(text: str) -> str:
    # NFKC neither makes a "\n" nor joins anything across one (a starter that composes with nothing).
    text = _APOSTROPHE.sub("'", unicodedata.normalize("NFKC", text))
    text = _spelled_lines(_expanded(text)).casefold()
    for symbol, replacement in _SYMBOLS:
        if symbol in text:
            text = text.replace(symbol, replacement)
    # Words and line breaks in order; the spaces next to a line break go.
    return " ".join(_WORD_OR_BREAK.findall(text)).replace(" \n", "\n").replace("\n ", "\n")


def _ascii_block(text: str) -> str:
    if "`" in text:
        text = text.replace("`", "'")
    text = _spelled_lines(_expanded(text)).lower()  # lower is casefold in ASCII
    for symbol, replacement in _SYMBOLS:
        if symbol in text:
            text = text.replace(symbol, replacement)
    # A word is [a-z]+ with inner apostrophes: everything else becomes a space, then so does any apostrophe
    # that is not between two letters, and the spaces close up.
    text = text.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii")
    if "'" in text:
        text = _LOOSE_APOSTROPHE.sub(" ", text)
    text = _SPACES.sub(" ", text).replace(" \n", "\n").replace("\n ", "\n")
    return text.strip(" ")


_ASCII_WORD_BYTES = bytes(c if chr(c) in "abcdefghijklmnopqrstuvwxyz'\n" else 32 for c in range(256))
_LOOSE_APOSTROPHE = re.compile(r"'(?:(?<![a-z]')|(?![a-z]))")
_SPACES = re.compile(r" {2,}")
# _ABBREVIATION, found from the "." that ends each (scanning for a "." is many times faster than trying a
# pattern at every position); the lookbehind that matched names the abbreviation.
_ABBREVIATION_END = re.compile(
    r"\.(?:"
    + "|".join(rf"(?<=(?<!\w)(?P<{name}>{re.escape(word)}))" for name, word in _ABBREVIATION_NAMES.items())
    + ")",
    re.I,
)


def _expanded(text: str) -> str:
    """``text`` with the abbreviations of ``_ABBREVIATIONS`` spelled out, as ``_ABBREVIATION.sub`` finds them
    (left to right, none overlapping the one before: no abbreviation holds another that ends sooner)."""
    if "." not in text:
        return text
    pieces: list[str] = []
    at = 0
    for m in _ABBREVIATION_END.finditer(text):
        name = m.lastgroup or ""
        start = m.start(name)
        if start < at:
            continue
        pieces += (text[at:start], _ABBREVIATIONS[_ABBREVIATION_NAMES[name]])
        at = m.end()
    if not pieces:
        return text
    pieces.append(text[at:])
    return "".join(pieces)


def _spelled_lines(text: str) -> str:
    """The number passes over the lines of ``text`` that have digits (the others they would not change)."""
    if not _HAS_DIGIT.search(text):
        return text
    lines = text.split("\n")
    with_digits = [i for i, line in enumerate(lines) if _HAS_DIGIT.search(line)]
    if len(with_digits) == len(lines):
        return _spell_numbers(text, _LINE_NUMBER_PASSES)
    _replace_lines(lines, with_digits, lambda block: _spell_numbers(block, _LINE_NUMBER_PASSES))
    return "\n".join(lines)
