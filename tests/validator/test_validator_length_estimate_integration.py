"""An MP3 that states its length nowhere, read from real MinIO: one far longer than the limit is refused from the
bit rate of frames read across it (a few ranged reads), before anything is decoded."""

import io
import threading

import pytest

from tests.validator.test_validator_audio import decoded_seconds
from tests.validator.test_validator_memory_integration import stored
from voxtrain_shared.storage import make_client
from voxtrain_validator.rules import audio
from voxtrain_validator.storage import object_validator

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("name", "basis"), [("speech_vbr_no_header.mp3", "variable"), ("speech_cbr_mpeg2.mp3", "constant")]
)
def test_a_stored_mp3_without_a_length_header_far_over_the_limit_is_refused_before_decoding(
    stack, media, monkeypatch, name, basis
) -> None:
    one = media.bytes(name)  # a frame stream: copies of it in a row are one longer stream
    data = one * 200
    seconds = 200 * decoded_seconds(io.BytesIO(one))
    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", seconds / 2 / 3600)  # twice the limit
    settings, dataset = stored(stack, data, "shift.mp3")

    result = object_validator(make_client(settings.minio), None)(dataset, {}, threading.Event())

    assert not result["passed"] and result["code"] == "invalid_audio_format"
    assert f"as its size and its {basis} bit rate" in result["message"], result["message"]
    assert result["metadata"]["duration_seconds"] == pytest.approx(seconds, rel=0.05)
    assert "samples" not in result["metadata"]  # nothing was decoded
