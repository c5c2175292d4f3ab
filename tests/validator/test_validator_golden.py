"""The block-wise validator says exactly what the line-by-line one said, on valid and hostile files.

The expected outcomes in ``golden/`` were recorded with the implementation that read one line and
parsed one cue at a time (before the block-wise fast paths); see ``golden_corpus``. Every finding,
its message, line, byte offset and field, every warning and all metadata must be the same.
"""

from __future__ import annotations

import json

import pytest

from tests.validator.golden_corpus import GOLDEN, SMALL_READS, Case, manifest_cases, run_case, transcript_cases

TRANSCRIPTS = transcript_cases()
MANIFESTS = manifest_cases()


def _expected(name: str) -> dict[str, object]:
    return json.loads((GOLDEN / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def transcripts_expected() -> dict[str, object]:
    return _expected("transcripts")


@pytest.fixture(scope="module")
def small_reads_expected(transcripts_expected) -> dict[str, object]:
    return {**transcripts_expected, **_expected("transcripts-4kib-reads")}


@pytest.fixture(scope="module")
def manifests_expected() -> dict[str, object]:
    return _expected("manifests")


def test_the_corpus_is_the_one_recorded(transcripts_expected, manifests_expected):
    assert {name for name, _, _ in TRANSCRIPTS} == set(transcripts_expected)
    assert {name for name, _, _ in MANIFESTS} == set(manifests_expected)


@pytest.mark.parametrize("case", TRANSCRIPTS, ids=[name for name, _, _ in TRANSCRIPTS])
def test_transcript_outcome_is_unchanged(case: Case, transcripts_expected):
    assert run_case(case) == transcripts_expected[case[0]]


@pytest.mark.parametrize("case", TRANSCRIPTS, ids=[name for name, _, _ in TRANSCRIPTS])
def test_transcript_outcome_is_unchanged_with_small_reads(case: Case, small_reads_expected):
    assert run_case(case, SMALL_READS) == small_reads_expected[case[0]]


@pytest.mark.parametrize("case", MANIFESTS, ids=[name for name, _, _ in MANIFESTS])
def test_manifest_outcome_is_unchanged(case: Case, manifests_expected):
    assert run_case(case) == manifests_expected[case[0]]
