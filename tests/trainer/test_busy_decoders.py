"""A synchronous transcription waits a bounded time for a decoder: all taken for the wait → 503 server_busy with
Retry-After and a message that says what to do, instead of a request that hangs."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from tests.trainer.test_transcription_jobs import Transcriber
from voxtrain_shared.errors import ApiError
from voxtrain_trainer import handlers as h
from voxtrain_trainer.admission import Busy, Places


def blocked(gate: threading.Event, answer: str) -> str:
    assert gate.wait(10)
    return answer


async def test_a_call_without_a_free_place_within_the_wait_is_refused() -> None:
    places, gate = Places(1, max_wait_seconds=0.1), threading.Event()
    first = asyncio.create_task(places.run(blocked, gate, "first"))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(Busy) as busy:
        await places.run(blocked, gate, "second")
    assert 0.09 < time.monotonic() - started < 2 and (busy.value.places, busy.value.waited_seconds) == (1, 0.1)
    gate.set()
    assert await first == "first"
    assert await places.run(str.upper, "free again") == "FREE AGAIN"


async def test_a_caller_that_stops_waiting_keeps_the_place_until_its_call_returns() -> None:
    places, gate = Places(1, max_wait_seconds=0.1), threading.Event()
    gone = asyncio.create_task(places.run(blocked, gate, "abandoned"))
    await asyncio.sleep(0.05)
    gone.cancel()  # e.g. the client disconnected; the decoding process still works on its file
    with pytest.raises(asyncio.CancelledError):
        await gone
    with pytest.raises(Busy):
        await places.run(str.upper, "x")
    gate.set()
    for _ in range(100):  # the place comes back once the call returned
        try:
            assert await places.run(str.upper, "x") == "X"
            break
        except Busy:
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("the place never came back")


async def test_a_busy_synchronous_transcription_answers_503_server_busy_with_retry_after(tmp_path: Path) -> None:
    places, gate = Places(1, max_wait_seconds=0.1), threading.Event()
    holder = asyncio.create_task(places.run(blocked, gate, "decoding someone else's file"))
    await asyncio.sleep(0.05)
    audio = tmp_path / "upload.wav"
    audio.write_text("take two tablets")
    try:
        with pytest.raises(ApiError) as refused:
            await h.transcribe(Transcriber(), h.BASE, audio, "ward.wav", 60.0, lambda _: 3.0, places=places)
    finally:
        gate.set()
        await holder
    err = refused.value
    assert (err.status, err.code, err.headers) == (503, "server_busy", {"Retry-After": "30"})
    assert "1 decoder(s)" in err.message and "ward.wav was not transcribed" in err.message
    assert "?mode=async" in err.message and "Try again in a minute" in err.message
    done = await h.transcribe(Transcriber(), h.BASE, audio, "ward.wav", 60.0, lambda _: 3.0, places=places)
    assert done.text == "take two tablets"
