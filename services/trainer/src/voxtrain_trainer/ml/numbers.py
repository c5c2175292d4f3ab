"""Spell numbers out as English words (American style, no "and").

Contract: every function returns lowercase words separated by single spaces and accepts only
the digit strings it documents; callers decide which text is a number.
"""

from __future__ import annotations

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ("", "thousand", "million", "billion", "trillion")
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
# Beyond this many digits a number is read digit by digit (ids, phone numbers, ...).
MAX_CARDINAL_DIGITS = 15


def digits_to_words(digits: str) -> str:
    """Read each digit of ``digits`` (``[0-9]+``) on its own: "042" -> "zero four two"."""
    return " ".join(_ONES[int(d)] for d in digits)


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest:
        words.append(_ONES[rest])
    return words


def cardinal(digits: str) -> str:
    """Spell a non-negative integer written as ``[0-9]+``: "1205" -> "one thousand two hundred five".

    Numbers with a leading zero ("007") or more than ``MAX_CARDINAL_DIGITS`` digits are read
    digit by digit, which is how people say them.
    """
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > MAX_CARDINAL_DIGITS:
        return digits_to_words(digits)
    n = int(digits)
    if n == 0:
        return "zero"
    words: list[str] = []
    scale = 0
    while n:
        n, chunk = divmod(n, 1000)
        if chunk:
            part = _below_thousand(chunk)
            if _SCALES[scale]:
                part.append(_SCALES[scale])
            words = part + words
        scale += 1
    return " ".join(words)


def ordinal(digits: str) -> str:
    """Spell an ordinal: "21" -> "twenty first", "12" -> "twelfth"."""
    words = cardinal(digits).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def decimal(integer: str, fraction: str) -> str:
    """Spell ``integer.fraction``: ("3", "5") -> "three point five"; fraction digit by digit."""
    return f"{cardinal(integer)} point {digits_to_words(fraction)}"
