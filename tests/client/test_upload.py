"""The client's resumable uploads against an in-memory voxtrain (the real-server test is test_cli_integration)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import tracemalloc
import uuid
from pathlib import Path
from urllib.parse import quote

import google_crc32c
import httpx
import pytest

from voxtrain_client.api import COMPLETE_READ_TIMEOUT, SEND_CHUNK, Client, part_checksum
from voxtrain_client.config import ClientConfig
from voxtrain_client.upload import Stopped, Uploader, UploadRefused, expand, plan_for, read_part, sha256_of


def checksum(data: bytes, algorithm: str) -> str:
    """A part's checksum as storage computes it (independently of the client's code)."""
    if algorithm == "CRC32C":
        return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class FakeVoxtrain:
    """The upload-session API and object storage, as far as the client uses them."""

    def __init__(self, part_size: int = 4, keep_bytes: bool = True) -> None:
        self.part_size = part_size
        self.keep_bytes = keep_bytes  # False: storage keeps (size, checksum) per part (:class:`PieceByPiece`)
        self.refuse_unsigned = False  # True: storage refuses a checksum header its URL does not sign (AWS S3)
        self.signed_urls = 0  # URLs asked for that sign a part's checksum
        self.sessions: dict[str, dict] = {}
        self.puts: list[tuple[str, int]] = []
        self.fail_after: int | None = None
        self.damage_next = 0
        self.completed: list[list[str]] = []
        self.reported: dict[str, dict[int, str]] = {}  # part checksums each completion reported
        self.file_hashes: dict[str, str] = {}  # the sha256 each completion gave
        self.algorithm: str | None = None  # sessions opened with this part checksum whatever is asked (the console's)

    def view(self, sid: str) -> dict:
        s = self.sessions[sid]
        count = max(1, -(-s["size"] // self.part_size))
        missing = [n for n in range(1, count + 1) if n not in s["parts"]]
        size = lambda n: min(self.part_size, s["size"] - (n - 1) * self.part_size)  # noqa: E731
        return {
            "id": sid,
            "dataset_id": s["dataset_id"],
            "file_name": s["file_name"],
            "size": s["size"],
            "part_size": self.part_size,
            "part_count": count,
            "state": "open",
            "missing_parts": missing,
            "checksum_algorithm": s["algorithm"],
            "part_urls": [{"part_number": n, "size": size(n), "url": f"http://storage/{sid}/{n}"} for n in missing],
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if request.url.host == "storage":
            if self.fail_after is not None and len(self.puts) >= self.fail_after:
                return httpx.Response(403, text="storage says no")  # permanent: not retried
            _, sid, n = path.split("/")
            algorithm = self.sessions[sid]["algorithm"]
            header = f"x-amz-checksum-{algorithm.lower()}"
            signed = request.url.params.get("signed-checksum")
            if signed is None and self.refuse_unsigned:  # as AWS S3: an x-amz-* header the URL does not sign
                return httpx.Response(
                    403, text="<Message>There were headers present in the request which were not signed"
                )
            if signed is not None and request.headers.get(header) != signed:
                return httpx.Response(403, text="<Code>SignatureDoesNotMatch</Code>")  # as storage: permanent
            if request.headers.get(header) != checksum(request.content, algorithm):
                return httpx.Response(400, text="<Code>InvalidArgument</Code> checksum missing or wrong")
            if self.damage_next:  # as if a bit flipped on the way: storage refuses the part
                self.damage_next -= 1
                return httpx.Response(400, text="<Code>XAmzContentChecksumMismatch</Code>")
            self.sessions[sid]["parts"][int(n)] = request.content
            self.puts.append((sid, int(n)))
            return httpx.Response(200)
        assert request.headers["authorization"] == "Bearer t"
        if method == "POST" and re.fullmatch(r"/v1/models/[^/]+/uploads", path):
            body = json.loads(request.content)
            sid = str(uuid.uuid4())
            self.sessions[sid] = {
                "size": body["size"],
                "file_name": body["file_name"],
                "parts": {},
                "dataset_id": str(uuid.uuid4()),
                "algorithm": self.algorithm or body.get("checksum_algorithm", "SHA256"),
            }
            return httpx.Response(201, json=self.view(sid))
        if method == "POST" and (m := re.fullmatch(r"/v1/models/[^/]+/uploads/([^/]+)/part-urls", path)):
            sid = m.group(1)
            self.signed_urls += 1
            view = {u["part_number"]: u for u in self.view(sid)["part_urls"]}
            urls = [
                {
                    **view[p["part_number"]],
                    "url": f"http://storage/{sid}/{p['part_number']}?signed-checksum={quote(c, safe='')}",
                }
                for p in json.loads(request.content)["parts"]
                for c in [p[f"checksum_{self.sessions[sid]['algorithm'].lower()}"]]
            ]
            return httpx.Response(200, json={"part_urls": urls})
        if method == "GET" and (m := re.fullmatch(r"/v1/models/[^/]+/uploads/([^/]+)", path)):
            return httpx.Response(200, json=self.view(m.group(1)))
        if method == "POST" and path.endswith("/uploads/complete"):
            items = json.loads(request.content)["uploads"]
            out = []
            for it in items:
                s = self.sessions[it["id"]]
                if self.keep_bytes:
                    data = b"".join(s["parts"][n] for n in sorted(s["parts"]))
                    if len(data) != s["size"] or hashlib.sha256(data).hexdigest() != it["sha256"]:
                        return httpx.Response(422, json={"error": {"code": "validation_failed", "message": "parts"}})
                    stored = {n: checksum(p, s["algorithm"]) for n, p in s["parts"].items()}
                else:
                    if sum(size for size, _ in s["parts"].values()) != s["size"]:
                        return httpx.Response(422, json={"error": {"code": "validation_failed", "message": "parts"}})
                    stored = {n: c for n, (_, c) in s["parts"].items()}
                reported = {p["part_number"]: p[f"checksum_{s['algorithm'].lower()}"] for p in it["parts"]}
                if any(stored.get(n) != c for n, c in reported.items()):
                    return httpx.Response(422, json={"error": {"code": "part_checksum_mismatch", "message": "x"}})
                self.reported[it["id"]] = reported
                self.file_hashes[it["id"]] = it["sha256"]
                out.append(
                    {
                        "id": s["dataset_id"],
                        "type": "TRANSCRIPT",
                        "file_name": s["file_name"],
                        "size": s["size"],
                        "status": "uploaded",
                    }
                )
            self.completed.append([it["id"] for it in items])
            return httpx.Response(201, json={"datasets": out})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": path}})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeVoxtrain:
    monkeypatch.setenv("VT_STATE_DIR", str(tmp_path / "state"))
    return FakeVoxtrain()


def files(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    for i in range(n):
        (folder / f"notes-{i:02d}.txt").write_text(f"the patient number {i} was seen on the ward\n" * (i + 1))
    (folder / ".hidden").write_text("not uploaded")
    return expand([folder])


def client_for(fake: FakeVoxtrain) -> Client:
    return Client(ClientConfig("http://vt", "t"), transport=httpx.MockTransport(fake.handle))


def test_more_than_ten_files_on_an_auto_training_model_are_refused_with_what_to_do(fake, tmp_path: Path) -> None:
    with pytest.raises(UploadRefused, match="--no-auto-train"):
        plan_for("m1", files(tmp_path / "in", 12), "auto", auto_train=True)


def test_twelve_files_go_as_two_uploads_and_a_killed_transfer_resumes_where_it_stopped(fake, tmp_path: Path) -> None:
    paths = files(tmp_path / "in", 12)
    assert len(paths) == 12  # the hidden file is not uploaded
    plan = plan_for("m1", paths, "auto", auto_train=False)
    assert [len(b.files) for b in plan.batches] == [10, 2]

    fake.fail_after = 25  # the connection "dies" part-way through the first upload
    with client_for(fake) as c, pytest.raises(Exception, match="storage says no"):
        Uploader(c, parallel=1).run(plan)
    sent_before = len(fake.puts)
    assert fake.completed == []

    fake.fail_after = None  # run the same command again: the plan comes back from disk
    resumed = plan_for("m1", paths, "auto", auto_train=False)
    seen: dict[str, int] = {}
    with client_for(fake) as c:
        datasets = Uploader(c, parallel=3, progress=lambda n, d, s: seen.__setitem__(n, seen.get(n, 0) + d)).run(
            resumed
        )

    assert len(datasets) == 12 and [len(batch) for batch in fake.completed] == [10, 2]
    total_parts = sum(len(s["parts"]) for s in fake.sessions.values())
    assert len(fake.puts) == total_parts, "no part was sent twice"
    assert sent_before == 25 and len(fake.sessions) == 12, "the resumed run reused the first run's sessions"
    assert seen == {p.name: p.stat().st_size for p in paths}, "progress covers every byte once"
    assert not resumed.path.exists(), "a finished upload leaves no state behind"
    # a file hashed in this run reports every part's checksum (the fake checks each against the stored part), also
    # of parts the first run sent; one the first run finished (hash saved) is not read again
    reported = {sid: len(r) for sid, r in fake.reported.items()}
    assert all(reported[sid] in (0, len(s["parts"])) for sid, s in fake.sessions.items())
    assert sum(reported.values()) >= total_parts - sent_before and 0 in reported.values()


class PieceByPiece(httpx.BaseTransport):
    """:class:`FakeVoxtrain` whose storage reads each part's body piece by piece, as a socket would, and keeps its size
    and checksum only (so the test measures the client's memory, not the transport's copy of every body)."""

    def __init__(self, fake: FakeVoxtrain) -> None:
        self.fake = fake

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "storage":
            request.read()
            return self.fake.handle(request)
        _, sid, n = request.url.path.split("/")
        crc, size = 0, 0
        for piece in request.stream:
            crc = google_crc32c.extend(crc, bytes(piece))
            size += len(piece)
        sent = base64.b64encode(crc.to_bytes(4, "big")).decode()
        assert self.fake.sessions[sid]["algorithm"] == "CRC32C" and request.headers["x-amz-checksum-crc32c"] == sent
        self.fake.sessions[sid]["parts"][int(n)] = (size, sent)
        return httpx.Response(200)


def test_memory_holds_one_part_per_sending_thread_whatever_the_file_size(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VT_STATE_DIR", str(tmp_path / "state"))
    part, parallel = 2 * 1024**2, 3
    fake = FakeVoxtrain(part_size=part, keep_bytes=False)
    path, digest = tmp_path / "talk.wav", hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(40):  # 80 MiB: 40 parts
            block = os.urandom(part)
            f.write(block)
            digest.update(block)
    plan = plan_for("m1", [path], "AUDIO", auto_train=False)
    tracemalloc.start()
    try:
        with Client(ClientConfig("http://vt", "t"), transport=PieceByPiece(fake)) as c:
            Uploader(c, parallel=parallel).run(plan)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [(sid, sent)] = fake.file_hashes.items()
    assert sent == digest.hexdigest() and len(fake.reported[sid]) == 40  # the file's hash from the parts' bytes
    # a buffer of one part per thread: measured 6.3 MiB (3 parts) with SHA-256 parts, 9.3 MiB with CRC32C parts (each
    # thread also holds the 1 MiB piece it copies for google-crc32c); the bound, 10 parts (20 MiB, 2.2x the
    # measurement), is a quarter of the file, so a client holding more of the file than its threads' parts fails
    assert peak < 10 * part, f"peak {peak / 2**20:.1f} MiB for an 80 MiB file"


def test_parts_go_to_urls_signing_their_checksum_once_storage_refuses_an_unsigned_one(fake, tmp_path: Path) -> None:
    paths = files(tmp_path / "in", 2)
    with client_for(fake) as c:  # MinIO: the session's URLs, the checksum header unsigned
        Uploader(c).run(plan_for("m1", paths[:1], "auto", auto_train=False))
    assert fake.signed_urls == 0
    fake.refuse_unsigned = True  # AWS S3: the first part is refused once, then every part gets a signed URL
    with client_for(fake) as c:
        [dataset] = Uploader(c, parallel=1).run(plan_for("m1", paths[1:], "auto", auto_train=False))
    parts = -(-paths[1].stat().st_size // fake.part_size)
    assert dataset.size == paths[1].stat().st_size and fake.signed_urls == parts


def test_a_part_damaged_on_the_way_is_sent_again(fake, tmp_path: Path) -> None:
    plan = plan_for("m1", files(tmp_path / "in", 1), "auto", auto_train=False)
    fake.damage_next = 1
    with client_for(fake) as c:
        [dataset] = Uploader(c).run(plan)
    assert dataset.size == (tmp_path / "in" / "notes-00.txt").stat().st_size and fake.damage_next == 0


class StreamRecorder(httpx.BaseTransport):
    """Object storage that reads each request body piece by piece, as a socket would, and keeps what it got."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.pieces: list[int] = []
        self.headers: list[httpx.Headers] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = bytearray()
        for piece in request.stream:
            self.pieces.append(len(piece))
            body += piece
        self.bodies.append(bytes(body))
        self.headers.append(request.headers)
        return httpx.Response(200, headers={"etag": '"x"'})


def test_a_part_is_read_once_hashed_and_sent_with_its_exact_length_and_checksum(tmp_path: Path) -> None:
    data = os.urandom(3 * SEND_CHUNK + 5)
    path = tmp_path / "big.wav"
    path.write_bytes(b"head" + data + b"tail")
    buffer = memoryview(bytearray(len(data)))
    checksum = read_part(path, 4, buffer)
    assert checksum == part_checksum(data) and bytes(buffer) == data
    storage = StreamRecorder()
    with Client(ClientConfig("http://vt", "t"), transport=storage) as c:
        c.put_part("http://storage/part/2", buffer, checksum)

    assert storage.bodies == [data]
    assert max(storage.pieces) <= SEND_CHUNK, "sent in pieces from the part's buffer"
    sent = storage.headers[0]
    assert sent["content-length"] == str(len(data)) and "transfer-encoding" not in sent  # presigned URLs sign it
    assert sent["x-amz-checksum-sha256"] == checksum
    assert "authorization" not in sent, "no voxtrain credentials go to storage"


def test_a_file_that_shrank_after_its_upload_started_is_not_sent_short(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    path.write_bytes(b"x" * 10)
    with pytest.raises(OSError, match="shorter than it was"):
        read_part(path, 0, memoryview(bytearray(20)))


def test_hashing_gives_up_when_told_to(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert sha256_of(path) == hashlib.sha256(b"abc").hexdigest()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        sha256_of(path, stop)


def test_completion_is_given_a_long_read_timeout(fake, tmp_path: Path) -> None:
    timeouts: list[dict] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/uploads/complete"):
            timeouts.append(request.extensions["timeout"])
        return fake.handle(request)

    plan = plan_for("m1", files(tmp_path / "in", 1), "auto", auto_train=False)
    with Client(ClientConfig("http://vt", "t"), transport=httpx.MockTransport(handle), timeout=5) as c:
        Uploader(c).run(plan)
    assert [t["read"] for t in timeouts] == [COMPLETE_READ_TIMEOUT] and timeouts[0]["connect"] == 5


def test_part_checksums_are_what_s3_computes() -> None:
    """CRC32C's check value (RFC 3720) and SHA-256's, base64 of the big-endian bytes."""
    assert part_checksum(b"123456789", "CRC32C") == base64.b64encode(bytes.fromhex("e3069283")).decode()
    assert part_checksum(memoryview(bytearray(b"123456789")), "CRC32C") == "4waSgw=="
    assert part_checksum(b"abc") == base64.b64encode(hashlib.sha256(b"abc").digest()).decode()
    path = Path(__file__)
    buffer = memoryview(bytearray(10))
    assert read_part(path, 3, buffer, "CRC32C") == checksum(path.read_bytes()[3:13], "CRC32C")


def test_new_uploads_send_crc32c_part_checksums_and_report_them(fake, tmp_path: Path) -> None:
    paths = files(tmp_path / "in", 2)
    with client_for(fake) as c:
        datasets = Uploader(c).run(plan_for("m1", paths, "auto", auto_train=False))
    assert len(datasets) == 2 and {s["algorithm"] for s in fake.sessions.values()} == {"CRC32C"}
    for sid, s in fake.sessions.items():  # storage checked each part's CRC32C header; completion reported them
        assert fake.reported[sid] == {n: checksum(p, "CRC32C") for n, p in s["parts"].items()}
        whole = b"".join(s["parts"][n] for n in sorted(s["parts"]))
        assert fake.file_hashes[sid] == hashlib.sha256(whole).hexdigest()  # the dataset's identity: SHA-256


def test_a_session_opened_with_sha256_is_resumed_with_sha256(fake, tmp_path: Path) -> None:
    paths = files(tmp_path / "in", 3)
    fake.algorithm = "SHA256"  # as a session opened by the console or an older client
    fake.fail_after = 4
    plan = plan_for("m1", paths, "auto", auto_train=False)
    with client_for(fake) as c, pytest.raises(Exception, match="storage says no"):
        Uploader(c, parallel=1).run(plan)
    fake.algorithm, fake.fail_after = None, None
    with client_for(fake) as c:
        datasets = Uploader(c, parallel=2).run(plan_for("m1", paths, "auto", auto_train=False))
    assert len(datasets) == 3 and {s["algorithm"] for s in fake.sessions.values()} == {"SHA256"}
    for sid, s in fake.sessions.items():
        assert fake.reported[sid] == {n: checksum(p, "SHA256") for n, p in s["parts"].items()}


def test_a_crc32c_part_damaged_on_the_way_is_sent_again_and_signed_urls_sign_crc32c(fake, tmp_path: Path) -> None:
    fake.damage_next, fake.refuse_unsigned = 1, True
    with client_for(fake) as c:
        [dataset] = Uploader(c, parallel=1).run(plan_for("m1", files(tmp_path / "in", 1), "auto", auto_train=False))
    [s] = fake.sessions.values()
    assert s["algorithm"] == "CRC32C" and fake.damage_next == 0 and fake.signed_urls == len(s["parts"])
    assert dataset.size == sum(len(p) for p in s["parts"].values())
