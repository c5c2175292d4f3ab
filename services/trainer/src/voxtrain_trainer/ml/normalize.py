"""The one text normaliser shared by LM training, evaluation and transcription.

Contract of :func:`normalize_text`: the result is lowercase words separated by single spaces,
each word made of letters with apostrophes only inside it ("don't", "patient's"); digits are
spelled out where a reading is clear ("12" -> "twelve", "3.5" -> "three point five", "2nd" ->
"second", "50%" -> "fifty percent", "$3.50" -> "three dollars fifty cents"); every other
character is a word separator. The same input always gives the same output, and applying it
twice changes nothing.
"""

from __future__ import annotations

import re
import unicodedata

from voxtrain_trainer.ml import numbers

_APOSTROPHES = str.maketrans({c: "'" for c in "\u2019\u2018\u02bc\u0060\u00b4\u2032"})

_ABBREVIATIONS = {
    "e.g.": " for example ",
    "i.e.": " that is ",
    "dr.": " doctor ",
    "mr.": " mister ",
    "mrs.": " missus ",
    "vs.": " versus ",
    "etc.": " et cetera ",
}
_ABBREVIATION = re.compile(r"\b(?:e\.g\.|i\.e\.|dr\.|mrs?\.|vs\.|etc\.)", re.I)
_HAS_DIGIT = re.compile(r"\d")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_CURRENCY = re.compile(r"\$\s?(\d+)(?:\.(\d\d))?(?![\d.])")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.I)
_CLOCK = re.compile(r"\b(\d{1,2}):(\d\d)\b")
_DECIMAL = re.compile(r"(\d*)\.(\d+)")
_RANGE = re.compile(r"(?<=\d)\s?[-\u2013]\s?(?=\d)")
_NEGATIVE = re.compile(r"(?<![\w.])-(?=\d)")
_LETTER_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
_INTEGER = re.compile(r"\d+")
_SYMBOLS = (("&", " and "), ("+", " plus "), ("@", " at "))
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


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


def _spell_numbers(text: str) -> str:
    text = _THOUSANDS_COMMA.sub("", text)
    text = _CURRENCY.sub(_currency, text)
    text = _PERCENT.sub(r"\1 percent", text)
    text = _ORDINAL.sub(lambda m: f" {numbers.ordinal(m.group(1))} ", text)
    text = _CLOCK.sub(_clock, text)
    text = _DECIMAL.sub(_decimal, text)
    text = _RANGE.sub(" to ", text)
    text = _NEGATIVE.sub(" minus ", text)
    text = _LETTER_DIGIT.sub(" ", text)
    return _INTEGER.sub(lambda m: f" {numbers.cardinal(m.group(0))} ", text)


def normalize_text(text: str) -> str:
    """Normalise ``text`` for the LM, the lexicon, WER and transcripts (see module contract)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    if "." in text:
        text = _ABBREVIATION.sub(lambda m: _ABBREVIATIONS[m.group(0).lower()], text)
    if _HAS_DIGIT.search(text):  # most text has no digits: skip the number passes
        text = _spell_numbers(text)
    text = text.casefold()
    for symbol, replacement in _SYMBOLS:
        text = text.replace(symbol, replacement)
    return " ".join(_WORD.findall(text))


def normalize_words(text: str) -> list[str]:
    """:func:`normalize_text` as a list of words."""
    return normalize_text(text).split()
