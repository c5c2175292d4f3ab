"""validate_manifest: line-by-line JSON, references resolved within the model, segment bounds."""

from __future__ import annotations

import io
import json

import pytest

from voxtrain_shared.vocab import DatasetType
from voxtrain_validator.rules import (
    AmbiguousReference,
    DatasetRef,
    DatasetState,
    Outcome,
    validate_manifest,
)

CODE = "validation_failed"

CALL = DatasetRef("a-call", DatasetType.AUDIO, "call.wav", DatasetState.PASSED, 60.0)
NEW_CALL = DatasetRef("a-new", DatasetType.AUDIO, "new.wav", DatasetState.PENDING, None)
BROKEN = DatasetRef("a-broken", DatasetType.AUDIO, "broken.mp3", DatasetState.FAILED, None)
NOTES = DatasetRef("t-notes", DatasetType.TRANSCRIPT, "notes.txt", DatasetState.PASSED)
EXAM = DatasetRef("t-exam", DatasetType.TEST, "exam.vtt", DatasetState.PASSED)
OTHER = DatasetRef("m-other", DatasetType.MANIFEST, "other.jsonl", DatasetState.PASSED)
TWINS = (
    DatasetRef("a-twin1", DatasetType.AUDIO, "twin.wav", DatasetState.PASSED, 5.0),
    DatasetRef("a-twin2", DatasetType.AUDIO, "twin.wav", DatasetState.PASSED, 7.0),
)


class FakeModelDatasets:
    """The resolver a service would build over its projection of one model's datasets."""

    def __init__(self, *datasets: DatasetRef) -> None:
        self.datasets = datasets
        self.calls: list[str] = []

    def __call__(self, ref: str) -> DatasetRef | None:
        self.calls.append(ref)
        by_id = [d for d in self.datasets if d.dataset_id == ref]
        if by_id:
            return by_id[0]
        by_name = [d for d in self.datasets if d.file_name == ref]
        if len(by_name) > 1:
            raise AmbiguousReference(ref, by_name)
        return by_name[0] if by_name else None


@pytest.fixture
def model() -> FakeModelDatasets:
    return FakeModelDatasets(CALL, NEW_CALL, BROKEN, NOTES, EXAM, OTHER, *TWINS)


def manifest(*lines: object) -> io.BytesIO:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    return io.BytesIO(text.encode())


def problems(outcome: Outcome) -> list[tuple[int | None, str | None]]:
    assert not outcome.passed and outcome.code == CODE
    return [(f.line, f.field) for f in outcome.details]


# ------------------------------------------------------------------ good manifests


def test_good_manifest_passes_with_what_it_links(model):
    outcome = validate_manifest(
        manifest(
            {"audio": "call.wav", "text": "good morning thank you for calling", "offset": 0, "duration": 4.5},
            {"audio": "a-call", "transcript": "notes.txt"},
            {"audio": "call.wav", "transcript": "t-exam", "offset": 10, "duration": 50},
            "",
            {"audio": "a-call", "text": "test pair", "split": "test", "offset": 30.5},
        ),
        model,
    )

    assert outcome.passed, outcome.details
    meta = outcome.metadata
    assert meta["entries"] == 4 and meta["lines"] == 5
    assert (meta["train_entries"], meta["test_entries"]) == (2, 2)  # exam.vtt is a TEST dataset
    assert meta["inline_text_entries"] == 2 and meta["inline_text_words"] == 8
    assert meta["segment_seconds"] == 54.5
    assert meta["referenced_dataset_ids"] == ["a-call", "t-exam", "t-notes"]
    assert meta["pending_dataset_ids"] == [] and meta["deferred_segment_ends"] == {}


def test_each_reference_is_looked_up_once(model):
    validate_manifest(manifest(*({"audio": "call.wav", "text": f"line {i}"} for i in range(20))), model)

    assert model.calls == ["call.wav"]


def test_audio_still_being_validated_is_fine_and_its_bounds_are_deferred(model):
    outcome = validate_manifest(
        manifest(
            {"audio": "new.wav", "text": "first part", "offset": 0, "duration": 12},
            {"audio": "a-new", "text": "second part", "offset": 12, "duration": 30.25},
        ),
        model,
    )

    assert outcome.passed
    assert outcome.metadata["pending_dataset_ids"] == ["a-new"]
    assert outcome.metadata["deferred_segment_ends"] == {"a-new": 42.25}


def test_repeated_entries_only_warn(model):
    outcome = validate_manifest(manifest({"audio": "call.wav", "text": "hi"}, {"audio": "a-call", "text": "hi"}), model)

    assert outcome.passed
    assert outcome.warnings == ("Line 2 repeats line 1; the pair is counted twice.",)


# ------------------------------------------------------------------ lines that are not entries


def test_bad_json_lines_are_reported_with_line_and_column(model):
    outcome = validate_manifest(
        manifest(
            {"audio": "call.wav", "text": "fine"},
            '{"audio": "call.wav", "text": "missing brace"',
            '{"audio": "call.wav" "text": "missing comma"}',
            '["call.wav", "a list"]',
            '"just a string"',
        ),
        model,
    )

    assert problems(outcome) == [(2, None), (3, None), (4, None), (5, None)]
    assert outcome.details[0].message == (
        "Line 2, column 46: not valid JSON (Expecting ',' delimiter). Each line must be one JSON object."
    )
    assert outcome.details[1].message.startswith("Line 3, column 22: not valid JSON")
    assert outcome.details[2].message.endswith("found a list.")
    assert outcome.details[3].message.endswith("found a string.")
    assert outcome.message == outcome.details[0].message + " (and 3 more problems)"


def test_missing_and_conflicting_keys(model):
    outcome = validate_manifest(
        manifest(
            {"text": "no audio"},
            {"audio": "call.wav"},
            {"audio": "call.wav", "text": "both", "transcript": "notes.txt"},
            {"audio": "call.wav", "text": "   "},
            {"audio": "call.wav", "text": "typo", "offest": 3},
        ),
        model,
    )

    assert problems(outcome) == [(1, "audio"), (2, "text"), (3, "transcript"), (4, "text"), (5, "offest")]
    assert outcome.details[0].message == ("Line 1: 'audio' is missing; every line names the audio dataset it is about.")
    assert outcome.details[4].message == (
        "Line 5: unknown key 'offest'; the keys are audio, text, transcript, offset, duration, split."
    )


@pytest.mark.parametrize(
    ("entry", "field", "expected"),
    [
        (
            {"audio": "call.wav", "text": "x", "offset": -1},
            "offset",
            "Line 1: 'offset' must be a number of seconds, 0 or more; found -1.",
        ),
        (
            {"audio": "call.wav", "text": "x", "duration": 0},
            "duration",
            "Line 1: 'duration' must be a number of seconds, more than 0; found 0.",
        ),
        (
            {"audio": "call.wav", "text": "x", "duration": "5"},
            "duration",
            "Line 1: 'duration' must be a number of seconds, more than 0; found \"5\".",
        ),
        (
            {"audio": "call.wav", "text": "x", "offset": True},
            "offset",
            "Line 1: 'offset' must be a number of seconds, 0 or more; found true.",
        ),
        (
            {"audio": "call.wav", "text": "x", "split": "dev"},
            "split",
            'Line 1: \'split\' must be "train" or "test", not "dev".',
        ),
        (
            {"audio": "call.wav", "text": "x", "offset": 61},
            "offset",
            'Line 1: the segment starts at 61 s, but "call.wav" is only 60 s long.',
        ),
        (
            {"audio": "call.wav", "text": "x", "offset": 50, "duration": 10.5},
            "duration",
            'Line 1: the segment 50–60.5 s runs past the end of "call.wav", which is 60 s long.',
        ),
    ],
)
def test_bad_segment_and_split_values(model, entry, field, expected):
    outcome = validate_manifest(manifest(entry), model)

    assert problems(outcome) == [(1, field)]
    assert outcome.message == expected


def test_nan_is_not_a_number_of_seconds(model):
    outcome = validate_manifest(manifest('{"audio": "call.wav", "text": "x", "offset": NaN}'), model)

    assert problems(outcome) == [(1, "offset")]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "-0.5", "9" * 400])
def test_a_bad_number_among_many_good_lines_is_found_where_it_is(model, value):
    # Lines are checked in batches of a few hundred; one bad value anywhere in a batch of good
    # lines (here not the first of its batch) is still reported on its line.
    lines = [{"audio": "call.wav", "text": f"words {n}", "offset": n % 50, "duration": 1.5} for n in range(1000)]
    lines[700] = f'{{"audio": "call.wav", "text": "x", "offset": 1, "duration": {value}}}'
    outcome = validate_manifest(manifest(*lines), model)

    assert problems(outcome) == [(701, "duration")]
    assert outcome.metadata["entries"] == 1000


def test_an_integer_too_big_for_a_float_is_an_error_not_a_crash(model):
    huge = "9" * 400  # JSON allows it; float() of it overflows
    outcome = validate_manifest(manifest(f'{{"audio": "call.wav", "text": "x", "offset": {huge}}}'), model)

    assert problems(outcome) == [(1, "offset")]
    assert outcome.message.startswith("Line 1: 'offset' must be a number of seconds, 0 or more; found 9999")


def test_json_the_batch_decoder_might_read_otherwise_is_read_as_json_reads_it(model):
    # Good lines are decoded a batch at a time by a faster decoder than json's; where JSON
    # allows more than one reading, the outcome is the one ``json.loads`` gives.
    lines = [{"audio": "call.wav", "text": f"words {n}", "offset": n % 50, "duration": 1.5} for n in range(1000)]
    lines[300] = '{"audio": "broken.mp3", "text": "last key wins", "audio": "call.wav"}'
    lines[301] = '{"audio": "new.wav", "text": "lone \\ud800 surrogate", "offset": 1000000000000000000000000000000}'
    # The same float as the line above, but not the same int: not a repeat.
    lines[302] = '{"audio": "new.wav", "text": "lone \\ud800 surrogate", "offset": 1000000000000000019884624838656}'
    lines[303] = '{"audio": "call.wav", "text": "pair \\ud83d\\ude00 and \\u00e9t\\u00e9", "split": "test"}'
    lines[304] = '{"audio": "call.wav", "text": "split twice", "split": "test", "split": "train"}'
    outcome = validate_manifest(manifest(*lines), model)

    assert outcome.passed, outcome.details
    assert outcome.warnings == ()
    assert outcome.metadata["entries"] == 1000
    assert outcome.metadata["test_entries"] == 1
    assert outcome.metadata["deferred_segment_ends"] == {"a-new": 1e30}
    # (A lone surrogate and an emoji are no words.)
    assert outcome.metadata["inline_text_words"] == 995 * 2 + 3 + 2 + 2 + 3 + 2


# ------------------------------------------------------------------ references


def test_wrong_reference_types(model):
    outcome = validate_manifest(
        manifest(
            {"audio": "notes.txt", "text": "x"},
            {"audio": "call.wav", "transcript": "a-call"},
            {"audio": "other.jsonl", "text": "x"},
            {"audio": "call.wav", "transcript": "m-other"},
        ),
        model,
    )

    assert problems(outcome) == [(1, "audio"), (2, "transcript"), (3, "audio"), (4, "transcript")]
    assert outcome.details[0].message == (
        "Line 1: 'audio' refers to \"notes.txt\", a TRANSCRIPT dataset; it must be an AUDIO dataset."
    )
    assert outcome.details[1].message == (
        "Line 2: 'transcript' refers to \"call.wav\", an AUDIO dataset; it must be a TRANSCRIPT or TEST dataset."
    )


def test_unknown_references(model):
    outcome = validate_manifest(
        manifest(
            {"audio": "missing.wav", "text": "x"},
            {"audio": "call.wav", "transcript": "00000000-0000-0000-0000-000000000000"},
            {"audio": 42, "text": "x"},
        ),
        model,
    )

    assert problems(outcome) == [(1, "audio"), (2, "transcript"), (3, "audio")]
    assert outcome.details[0].message == (
        "Line 1: 'audio' refers to \"missing.wav\", but this model "
        "has no dataset with that id or file name. Upload it "
        "first, or check the spelling."
    )


@pytest.mark.parametrize(
    "ref",
    ["../other-tenant/call.wav", "call/../../x.wav", "dir/call.wav", "C:\\audio\\call.wav", "..", "s3://bucket/key"],
)
def test_path_references_are_refused_without_a_lookup(model, ref):
    outcome = validate_manifest(manifest({"audio": ref, "text": "x"}, {"audio": "call.wav", "transcript": ref}), model)

    assert problems(outcome) == [(1, "audio"), (2, "transcript")]
    assert "which looks like a path" in outcome.details[0].message
    assert ref not in model.calls


def test_a_dataset_that_failed_validation_is_an_error(model):
    outcome = validate_manifest(manifest({"audio": "broken.mp3", "text": "x"}), model)

    assert problems(outcome) == [(1, "audio")]
    assert outcome.message == (
        "Line 1: 'audio' refers to \"broken.mp3\" (dataset a-broken), which "
        "failed validation. Fix or replace that file first."
    )


def test_an_ambiguous_file_name_asks_for_the_id(model):
    outcome = validate_manifest(manifest({"audio": "twin.wav", "text": "x"}, {"audio": "a-twin2", "text": "x"}), model)

    assert problems(outcome) == [(1, "audio")]
    assert outcome.message == (
        "Line 1: 'audio' file name \"twin.wav\" matches 2 datasets of this "
        "model; use the dataset id instead (one of: a-twin1, a-twin2)."
    )


def test_resolver_failures_propagate(model):
    def down(ref: str) -> DatasetRef | None:
        raise ConnectionError("database unavailable")

    with pytest.raises(ConnectionError):
        validate_manifest(manifest({"audio": "call.wav", "text": "x"}), down)


# ------------------------------------------------------------------ whole-file problems


def test_empty_manifests(model):
    empty = validate_manifest(io.BytesIO(b""), model)
    blank = validate_manifest(io.BytesIO(b"\n\n  \n"), model)

    assert problems(empty) == [(None, None)] and empty.message.startswith("The manifest is empty (0 bytes).")
    assert problems(blank) == [(None, None)] and blank.message.startswith("The manifest has no entries")


def test_not_utf8_is_reported_with_the_byte_offset(model):
    data = b'{"audio": "call.wav", "text": "ok"}\n{"audio": "call.wav", "text": "caf\xe9"}\n'

    outcome = validate_manifest(io.BytesIO(data), model)

    assert problems(outcome) == [(2, None)]
    assert outcome.details[0].byte_offset == data.index(b"\xe9")


def test_details_are_capped_with_a_count(model):
    outcome = validate_manifest(manifest(*({"audio": "nope.wav", "text": "x"} for _ in range(200))), model)

    assert len(outcome.details) == 50 and outcome.details_dropped == 150
    assert outcome.details[-1].line == 50
    assert outcome.message.endswith("(and 199 more problems)")
    assert outcome.to_dict()["details"][0] == {"message": outcome.details[0].message, "line": 1, "field": "audio"}
