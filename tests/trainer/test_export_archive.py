"""Export without servers: the streamed tar.gz with its checksum manifest, and what the archive holds."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from voxtrain_trainer import archive, export

BASE = ["README", "feat.params", "mdef", "means", "noisedict", "sendump", "transition_matrices", "variances"]
PREFIX = "s3://bucket/tenants/acme/models/m/runs/r/attempt-1/"
ARTIFACTS = {
    "lm": PREFIX + "lm.arpa",
    "lm_bin": PREFIX + "lm.bin",
    "lexicon": PREFIX + "lexicon.dict",
    "decoder": PREFIX + "decoder.json",
    "metrics": PREFIX + "metrics.json",
    "model_card": PREFIX + "model_card.md",
}
DECODER = {
    "format": 1,
    "lm": "lm.bin",
    "lm_arpa": "lm.arpa",
    "dictionary": "lexicon.dict",
    "acoustic_model": "pocketsphinx:en-us",
    "lw": 9.0,
    "wip": 0.65,
    "order": 3,
    "sample_rate": 16000,
}


def unpack(chunks: Iterator[bytes]) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_the_archive_holds_every_member_and_a_manifest_of_their_sha256() -> None:
    files = {"a.txt": b"hello\n", "dir/b.bin": os.urandom(70_000), "empty": b""}
    got = unpack(archive.tar_gz("root", [archive.from_bytes(n, d) for n, d in files.items()], mtime=0))
    assert set(got) == {f"root/{n}" for n in files} | {"root/SHA256SUMS"}
    for name, data in files.items():
        assert got[f"root/{name}"] == data
    manifest = dict(reversed(line.split("  ", 1)) for line in got["root/SHA256SUMS"].decode().splitlines())
    assert manifest == {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}


def test_members_are_read_only_while_written_in_small_chunks() -> None:
    opened: list[str] = []
    size, piece = 24 << 20, 1 << 20
    block = os.urandom(piece)  # incompressible (zlib's window is 32 kB): the output is as large as the input

    def source(name: str) -> Iterator[bytes]:
        opened.append(name)
        for _ in range(size // piece):
            yield block

    members = [archive.Member(n, size, lambda n=n: source(n)) for n in ("first", "second")]
    stream = archive.tar_gz("root", members, mtime=0)
    for _ in stream:
        if opened:
            break
    assert opened == ["first"]  # the second source is not touched while the first is written
    sizes = [len(c) for c in stream]
    assert opened == ["first", "second"]
    assert sum(sizes) > size and max(sizes) < 2 * piece  # > 24 MB of output, never much at once


def test_a_source_that_gives_another_size_than_declared_ends_the_stream() -> None:
    short = archive.Member("short", 10, lambda: iter([b"12345"]))
    with pytest.raises(ValueError, match="short: expected 10 bytes"):
        b"".join(archive.tar_gz("root", [short], mtime=0))
    long = archive.Member("long", 3, lambda: iter([b"12345"]))
    with pytest.raises(ValueError, match="long: expected 3 bytes"):
        b"".join(archive.tar_gz("root", [long], mtime=0))


def test_a_text_only_model_ships_the_base_acoustic_model_whole_with_its_decoder_settings() -> None:
    p = export.plan(DECODER, ARTIFACTS, BASE)
    names = [n for n, _ in p.files]
    assert names[:4] == ["lm.bin", "lm.arpa", "lexicon.dict", "metrics.json"]
    assert {n for n in names if n.startswith("acoustic-model/")} == {f"acoustic-model/{b}" for b in BASE}
    assert all(src == export.BaseFile(n.split("/")[1]) for n, src in p.files if n.startswith("acoustic-model/"))
    assert dict(p.files)["lm.bin"] == export.Artifact(PREFIX + "lm.bin")
    assert p.settings["files"] == {"hmm": "acoustic-model", "lm": "lm.bin", "dict": "lexicon.dict"}
    assert p.settings["options"] == {"lw": 9.0, "wip": 0.65}
    assert json.loads(export.settings_json(p)) == p.settings


def test_the_search_options_the_model_decodes_with_ship_beside_its_weights() -> None:
    p = export.plan({**DECODER, "search": {"pl_window": 0, "topn": 8}}, ARTIFACTS, BASE)
    assert p.settings["options"] == {"lw": 9.0, "wip": 0.65, "pl_window": 0, "topn": 8}
    card = export.model_card("m", "r", None, datetime(2026, 11, 29, tzinfo=UTC), p, "# Custom speech model\n")
    assert "lw 9, wip 0.65, pl_window 0, topn 8" in card


def test_an_adapted_model_replaces_the_base_files_and_adds_its_mllr_transform() -> None:
    adapted = {**ARTIFACTS, "acoustic_mean": PREFIX + "am_means", "acoustic_sendump": PREFIX + "am_sendump"}
    decoder = {
        **DECODER,
        "acoustic_model": "pocketsphinx:en-us+map",
        "acoustic_files": {"mean": "am_means", "sendump": "am_sendump"},
    }
    files = dict(export.plan(decoder, adapted, BASE).files)
    assert files["acoustic-model/means"] == export.Artifact(PREFIX + "am_means")
    assert files["acoustic-model/sendump"] == export.Artifact(PREFIX + "am_sendump")
    assert files["acoustic-model/variances"] == export.BaseFile("variances")
    mllr = {**ARTIFACTS, "acoustic_mllr": PREFIX + "am_mllr_matrix"}
    p = export.plan(
        {**DECODER, "acoustic_model": "pocketsphinx:en-us+mllr", "acoustic_files": {"mllr": "am_mllr_matrix"}},
        mllr,
        BASE,
    )
    assert dict(p.files)["acoustic-model/mllr_matrix"] == export.Artifact(PREFIX + "am_mllr_matrix")
    assert p.settings["files"]["mllr"] == "acoustic-model/mllr_matrix"
    card = export.model_card("m", "r", None, datetime(2026, 11, 29, tzinfo=UTC), p, "# Custom speech model\n")
    assert "adapted to the training audio with mllr" in card and "BSD" in card and "# Custom speech model" in card


def test_a_file_the_decoder_needs_but_the_run_did_not_store_is_refused() -> None:
    without = {k: v for k, v in ARTIFACTS.items() if k != "lexicon"}
    with pytest.raises(ValueError, match=r"lexicon\.dict is missing"):
        export.plan(DECODER, without, BASE)
