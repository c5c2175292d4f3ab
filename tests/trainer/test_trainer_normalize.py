"""The shared normaliser and its number reading."""

from __future__ import annotations

import pytest

from voxtrain_trainer.ml import numbers
from voxtrain_trainer.ml.normalize import normalize_text
from voxtrain_trainer.ml.sentences import normalized_sentences, split_sentences


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Give 12 mg of Metoprolol, twice a day.", "give twelve mg of metoprolol twice a day"),
        ("pH was 3.5", "ph was three point five"),
        ("Don't stop; the patient's BP is fine!", "don't stop the patient's bp is fine"),
        ("\u2018quoted\u2019 it\u2019s", "quoted it's"),
        ("the 2nd and 21st dose", "the second and twenty first dose"),
        ("50% off, $3.50 total, $1", "fifty percent off three dollars fifty cents total one dollar"),
        ("1,000,000 cells", "one million cells"),
        ("at 10:05 or 7:00", "at ten oh five or seven o'clock"),
        ("take 2-3 tablets", "take two to three tablets"),
        ("COVID19 follow-up", "covid nineteen follow up"),
        ("room 007", "room zero zero seven"),
        ("0.25 and .5", "zero point two five and point five"),
        ("Dr. Smith vs. Mr. Jones", "doctor smith versus mister jones"),
        ("  ...!!!  ", ""),
        ("Café NAÏVE", "café naïve"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_is_idempotent() -> None:
    text = "On 3/4 at 10:30, Dr. O'Brien gave 2.5 mg (the 3rd dose) & 50% more."
    once = normalize_text(text)
    assert normalize_text(once) == once


@pytest.mark.parametrize(
    ("digits", "words"),
    [
        ("0", "zero"),
        ("13", "thirteen"),
        ("40", "forty"),
        ("105", "one hundred five"),
        ("1200", "one thousand two hundred"),
        ("2000001", "two million one"),
        ("1234567890123456", "one two three four five six seven eight nine zero one two three four five six"),
    ],
)
def test_cardinal(digits: str, words: str) -> None:
    assert numbers.cardinal(digits) == words


@pytest.mark.parametrize(
    ("digits", "words"), [("1", "first"), ("12", "twelfth"), ("20", "twentieth"), ("103", "one hundred third")]
)
def test_ordinal(digits: str, words: str) -> None:
    assert numbers.ordinal(digits) == words


def test_split_sentences_keeps_abbreviations_and_decimals() -> None:
    text = "Dr. Smith saw the patient. Dose was 3.5 mg! Was it enough? Yes"
    assert split_sentences(text) == ["Dr. Smith saw the patient.", "Dose was 3.5 mg!", "Was it enough?", "Yes"]


def test_normalized_sentences_skip_empty() -> None:
    assert list(normalized_sentences(["Hello there. ...", "", "!!"])) == ["hello there"]
