"""The storage adapter on real MinIO with a shared memory budget: an M4A read from storage is opened only while
its index fits, is refused when it never can, and stops waiting when its job is given up."""

import io
import threading
import time
import uuid

import pytest

from tests.support import settings_for
from voxtrain_shared.settings import ValidatorSettings
from voxtrain_shared.storage import ensure_bucket, make_client
from voxtrain_shared.vocab import DatasetType
from voxtrain_validator.domain import Dataset
from voxtrain_validator.rules.audio import MP4_INDEX_BYTES_PER_PACKET
from voxtrain_validator.rules.audio_headers import mp4_audio_packets
from voxtrain_validator.rules.memory import MemoryBudget
from voxtrain_validator.storage import Cancelled, object_validator

pytestmark = pytest.mark.integration


def stored(stack, data: bytes, filename: str) -> tuple[ValidatorSettings, Dataset]:
    """``data`` stored in MinIO as an AUDIO dataset named ``filename``."""
    settings = settings_for(ValidatorSettings, stack)
    minio = make_client(settings.minio)
    ensure_bucket(minio, settings.minio.bucket)
    key = f"tenants/acme/models/{uuid.uuid4()}/datasets/{uuid.uuid4()}/data"
    minio.put_object(settings.minio.bucket, key, io.BytesIO(data), len(data))
    dataset = Dataset(
        uuid.uuid4(), "acme", uuid.uuid4(), DatasetType.AUDIO, filename, settings.minio.bucket, key, len(data)
    )
    return settings, dataset


def waits_for_room_then_passes(settings: ValidatorSettings, dataset: Dataset, budget: MemoryBudget) -> None:
    """The check of ``dataset`` waits while another holds a byte of ``budget``, then passes and gives it back."""
    check = object_validator(make_client(settings.minio), budget)
    out: dict = {}
    with budget.hold(1):
        thread = threading.Thread(target=lambda: out.update(result=check(dataset, {}, threading.Event())))
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and not out
    thread.join(30)
    assert out["result"]["passed"], out["result"]["message"]
    assert budget.used == 0


@pytest.fixture
def stored_m4a(stack, media) -> tuple[ValidatorSettings, Dataset, int]:
    data = media.bytes("speech.m4a")
    settings, dataset = stored(stack, data, "talk.m4a")
    need = mp4_audio_packets(io.BytesIO(data), len(data)) * MP4_INDEX_BYTES_PER_PACKET
    return settings, dataset, need


def test_an_m4a_whose_index_never_fits_is_refused(stored_m4a) -> None:
    settings, dataset, need = stored_m4a
    check = object_validator(make_client(settings.minio), MemoryBudget(need - 1))

    result = check(dataset, {}, threading.Event())

    assert not result["passed"] and result["code"] == "invalid_audio_format"
    assert "a validation may use" in result["message"] and "Split the recording" in result["message"]


def test_an_m4a_waits_for_room_in_the_budget_and_a_given_up_wait_ends(stored_m4a) -> None:
    settings, dataset, need = stored_m4a
    budget = MemoryBudget(need, poll_seconds=0.01)
    waits_for_room_then_passes(settings, dataset, budget)

    check = object_validator(make_client(settings.minio), budget)
    given_up = threading.Event()
    given_up.set()
    with budget.hold(1), pytest.raises(Cancelled):
        check(dataset, {}, given_up)
    assert budget.used == 0


def test_a_stored_fragmented_m4a_waits_for_what_its_size_could_index(stack, media, tmp_path) -> None:
    import subprocess

    from voxtrain_validator.rules.audio import MIN_MP4_PACKET_BYTES

    frag = tmp_path / "fragmented.m4a"
    flags = ("-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(media["speech.wav"]), "-c:a", "aac", *flags, str(frag)], check=True
    )
    settings, dataset = stored(stack, frag.read_bytes(), "talk.m4a")
    budget = MemoryBudget(frag.stat().st_size // MIN_MP4_PACKET_BYTES * MP4_INDEX_BYTES_PER_PACKET, poll_seconds=0.01)
    waits_for_room_then_passes(settings, dataset, budget)
