"""The upload rules, on the pure domain code."""

import uuid

import pytest

from voxtrain_datasets import domain as d
from voxtrain_shared.storage import dataset_key
from voxtrain_shared.vocab import DatasetType as T
from voxtrain_shared.vocab import ErrorCode
from voxtrain_shared.vocab import ModelStatus as S

MiB, GiB = 1024**2, 1024**3


def code_of(fn, *args) -> ErrorCode:
    with pytest.raises(d.Rejected) as info:
        fn(*args)
    return info.value.code


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.vtt", T.TRANSCRIPT),
        ("a.srt", T.TRANSCRIPT),
        ("a.txt", T.TRANSCRIPT),
        ("A.TXT", T.TRANSCRIPT),
        ("a.wav", T.AUDIO),
        ("a.mp3", T.AUDIO),
        ("a.m4a", T.AUDIO),
        ("a.FLAC", T.AUDIO),
        ("lines.jsonl", T.MANIFEST),
        ("archive.tar.wav", T.AUDIO),
    ],
)
def test_auto_detects_every_extension(name: str, kind: T) -> None:
    assert d.detect_type(name) is kind
    assert d.type_for_file(None, name) is kind


@pytest.mark.parametrize("name", ["a.docx", "a", "wav", ".wav", "a.wav.zip", "a.json"])
def test_auto_refuses_what_it_cannot_place(name: str) -> None:
    assert d.detect_type(name) is None
    assert code_of(d.type_for_file, None, name) is ErrorCode.VALIDATION_FAILED


@pytest.mark.parametrize(
    ("kind", "name", "code"),
    [
        (T.TRANSCRIPT, "a.wav", ErrorCode.INVALID_TRANSCRIPT_FORMAT),
        (T.TEST, "a.jsonl", ErrorCode.INVALID_TRANSCRIPT_FORMAT),
        (T.AUDIO, "a.txt", ErrorCode.INVALID_AUDIO_FORMAT),
        (T.AUDIO, "a.ogg", ErrorCode.INVALID_AUDIO_FORMAT),
        (T.MANIFEST, "a.json", ErrorCode.VALIDATION_FAILED),
    ],
)
def test_extension_must_match_the_chosen_type(kind: T, name: str, code: ErrorCode) -> None:
    assert code_of(d.type_for_file, kind, name) is code


def test_a_chosen_type_wins_where_the_extension_fits() -> None:
    assert d.type_for_file(T.TEST, "eval.vtt") is T.TEST
    assert d.type_for_file(T.TRANSCRIPT, "x.SRT") is T.TRANSCRIPT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("auto", None),
        ("AUTO", None),
        ("", None),
        ("TRANSCRIPT", T.TRANSCRIPT),
        ("test", T.TEST),
        ("3", T.AUDIO),
        (4, T.MANIFEST),
        (" 1 ", T.TRANSCRIPT),
    ],
)
def test_requested_type_by_name_or_number(value, expected) -> None:
    assert d.parse_requested_type(value) is expected


@pytest.mark.parametrize("value", ["5", "0", "VIDEO", "1.5"])
def test_unknown_types_are_refused(value) -> None:
    assert code_of(d.parse_requested_type, value) is ErrorCode.VALIDATION_FAILED


def test_file_count_is_1_to_10() -> None:
    assert code_of(d.check_file_count, 0, 10) is ErrorCode.VALIDATION_FAILED
    d.check_file_count(1, 10)
    d.check_file_count(10, 10)
    assert code_of(d.check_file_count, 11, 10) is ErrorCode.TOO_MANY_FILES


def test_size_limit_speaks_the_specs_words() -> None:
    d.check_size("a.wav", 10 * GiB, 10 * GiB)
    with pytest.raises(d.Rejected) as info:
        d.check_size("big.wav", 10 * GiB + 1, 10 * GiB)
    assert info.value.code is ErrorCode.FILE_TOO_LARGE
    assert info.value.message == "File size exceeds 10GB limit: big.wav"
    assert info.value.details == {"file_name": "big.wav", "limit_bytes": 10 * GiB}
    assert d.size_text(MiB) == "1MB" and d.size_text(1000) == "1000 bytes"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\Windows\\win.ini.txt", "win.ini.txt"),
        ("C:\\Users\\me\\talk.wav", "talk.wav"),
        ("a\x00b\x1f.txt", "ab.txt"),
        ("\u202etxt.exe.wav", "txt.exe.wav"),  # a right-to-left override would disguise the extension
        ("zero\u200bwidth.srt", "zerowidth.srt"),
        ("  many   spaces\t.vtt  ", "many spaces .vtt"),
        ("..", d.UNNAMED),
        ("", d.UNNAMED),
        ("dir/", d.UNNAMED),
        ("...", d.UNNAMED),
        ("cafe\u0301.txt", "caf\u00e9.txt"),
        ("Überprüfung – Diktat.txt", "Überprüfung – Diktat.txt"),
    ],
)
def test_display_names_are_safe(raw: str, shown: str) -> None:
    assert d.display_name(raw) == shown


def test_long_names_keep_their_extension() -> None:
    name = d.display_name("x" * 1000 + ".flac")
    assert len(name) == d.MAX_NAME_CHARS and name.endswith(".flac")


def test_escaped_names_show_what_was_sent() -> None:
    assert d.escaped_name("a\nb\u202e.txt") == "a\\u000ab\\u202e.txt"
    assert d.escaped_name("../x.txt") == "../x.txt"


def test_object_keys_come_from_ids_only() -> None:
    model, dataset = uuid.uuid4(), uuid.uuid4()
    assert d.object_key("acme", model, dataset) == dataset_key("acme", model, dataset)
    with pytest.raises(TypeError):
        d.object_key("acme", model, "../../etc/passwd")
    with pytest.raises(ValueError):
        d.object_key("../acme", model, dataset)


def test_content_type_follows_the_extension() -> None:
    assert d.content_type_for("a.WAV") == "audio/wav"
    assert d.content_type_for("a.jsonl") == "application/jsonl"
    assert d.content_type_for("a.html") == "application/octet-stream"


def test_part_plans_respect_s3_rules() -> None:
    p = d.plan_parts(10 * GiB, 16 * MiB)
    assert (p.part_size, p.count) == (16 * MiB, 640)
    assert d.plan_parts(1, 16 * MiB).count == 1 and d.plan_parts(1, 16 * MiB).part_bytes(1) == 1
    odd = d.plan_parts(11 * MiB + 3, 5 * MiB)
    assert odd.count == 3 and [odd.part_bytes(n) for n in (1, 2, 3)] == [5 * MiB, 5 * MiB, MiB + 3]
    huge = d.plan_parts(1024 * GiB, 5 * MiB)
    assert huge.count <= d.MAX_PARTS and huge.part_size % MiB == 0
    assert d.plan_parts(5 * GiB, 1 * MiB).part_size == d.MIN_PART_SIZE
    assert code_of(d.plan_parts, 0, 5 * MiB) is ErrorCode.VALIDATION_FAILED


def test_streamed_parts_fit_the_limit_in_10000_parts() -> None:
    assert d.streaming_part_size(16 * MiB, 10 * GiB) == 16 * MiB
    assert d.streaming_part_size(5 * MiB, 1024 * GiB) * d.MAX_PARTS >= 1024 * GiB


def test_parts_are_checked_against_the_plan() -> None:
    plan = d.plan_parts(11 * MiB + 3, 5 * MiB)
    d.check_parts(plan, {1: 5 * MiB, 2: 5 * MiB, 3: MiB + 3})
    with pytest.raises(d.Rejected) as info:
        d.check_parts(plan, {1: 5 * MiB, 3: MiB + 3})
    assert "part 2 missing" in info.value.message and info.value.details["missing_parts"] == [2]
    with pytest.raises(d.Rejected) as info:
        d.check_parts(plan, {1: 5 * MiB, 2: 4 * MiB, 3: MiB + 3, 4: 1})
    assert info.value.details["wrong_size_parts"] == [{"part_number": 2, "size": 4 * MiB, "expected": 5 * MiB}]
    assert info.value.details["unexpected_parts"] == [4]
    with pytest.raises(d.Rejected) as info:
        d.check_parts(d.plan_parts(40 * MiB, 5 * MiB), {1: 5 * MiB, 5: 5 * MiB})
    assert "parts 2-4, 6-8 missing" in info.value.message


def test_every_part_needs_its_storage_verified_checksum_and_reported_ones_must_match() -> None:
    a, b = "A" * 43 + "=", "B" * 43 + "="
    d.check_part_checksums("f.wav", {1: a, 2: b}, {})
    d.check_part_checksums("f.wav", {1: a, 2: b}, {2: b})  # the uploader may report some parts only
    with pytest.raises(d.Rejected) as info:
        d.check_part_checksums("f.wav", {1: a, 2: None, 3: None, 5: None}, {1: a})
    assert info.value.code is ErrorCode.PART_CHECKSUM_MISSING
    assert info.value.details == {"parts": [2, 3, 5], "checksum_algorithm": "SHA256"}
    assert "f.wav: parts 2-3, 5 reached storage without a SHA-256" in info.value.message
    with pytest.raises(d.Rejected) as info:
        d.check_part_checksums("f.wav", {1: a, 2: b}, {1: a, 2: a})
    assert info.value.code is ErrorCode.PART_CHECKSUM_MISMATCH and "part 2" in info.value.message
    assert info.value.details == {"parts": [{"part_number": 2, "reported": a, "stored": b}]}


def test_part_checksum_refusals_name_the_algorithm_of_the_upload() -> None:
    crc = d.ChecksumAlgorithm.CRC32C
    with pytest.raises(d.Rejected) as info:
        d.check_part_checksums("f.wav", {1: None}, {}, crc)
    assert info.value.code is ErrorCode.PART_CHECKSUM_MISSING
    assert "without a CRC32C checksum" in info.value.message and "x-amz-checksum-crc32c" in info.value.message
    with pytest.raises(d.Rejected) as info:
        d.check_part_checksums("f.wav", {1: "AAAAAA=="}, {1: "AAAAAQ=="}, crc)
    assert info.value.code is ErrorCode.PART_CHECKSUM_MISMATCH and "their CRC32C differs" in info.value.message


def test_the_checksum_algorithm_names_its_header_and_field() -> None:
    assert [(a.value, a.header, a.body_field) for a in d.ChecksumAlgorithm] == [
        ("SHA256", "x-amz-checksum-sha256", "checksum_sha256"),
        ("CRC32C", "x-amz-checksum-crc32c", "checksum_crc32c"),
    ]


def test_reported_part_checksums_are_of_one_algorithm_the_sessions() -> None:
    sha, crc = d.ChecksumAlgorithm.SHA256, d.ChecksumAlgorithm.CRC32C
    assert d.reported_algorithm(set()) is None and d.reported_algorithm({crc}) is crc
    assert code_of(d.reported_algorithm, {sha, crc}) is ErrorCode.VALIDATION_FAILED
    session = d.UploadSession(
        id=uuid.uuid4(),
        tenant_id="acme",
        model_id=uuid.uuid4(),
        dataset_id=uuid.uuid4(),
        type=T.AUDIO,
        file_name="f.wav",
        original_name="f.wav",
        content_type="audio/wav",
        object_key="k",
        s3_upload_id="u",
        size=1,
        part_size=MiB,
        part_count=1,
        state="open",
        created_at=d.datetime.now(),
        expires_at=d.datetime.now(),
        checksum_algorithm=crc,
    )
    d.check_checksum_algorithm(session, crc)
    d.check_checksum_algorithm(session, None)  # none reported: nothing to check
    with pytest.raises(d.Rejected) as info:
        d.check_checksum_algorithm(session, sha)
    assert info.value.code is ErrorCode.VALIDATION_FAILED and info.value.details == {"checksum_algorithm": "CRC32C"}
    assert "give each part's checksum_crc32c, not checksum_sha256" in info.value.message


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (None, ErrorCode.NOT_FOUND),
        (S.READY_TO_RUN, ErrorCode.MODEL_LOCKED),
        (S.RUNNING, ErrorCode.MODEL_LOCKED),
        (S.SUCCESS, ErrorCode.INVALID_STATUS),
    ],
)
def test_only_1_and_5_accept_dataset_changes(status, code) -> None:
    assert code_of(d.check_model_accepts_changes, uuid.uuid4(), status) is code


@pytest.mark.parametrize("status", [S.NOT_RUNNING, S.FAILED])
def test_1_and_5_accept_datasets(status) -> None:
    d.check_model_accepts_changes(uuid.uuid4(), status)
