"""The memory budget the concurrent checks of one validator process share (rules.memory), and the M4A check that
holds its index in it."""

import io
import threading
import time

import pytest

from voxtrain_validator.rules.audio import MP4_INDEX_BYTES_PER_PACKET, validate_audio
from voxtrain_validator.rules.audio_headers import mp4_audio_packets
from voxtrain_validator.rules.memory import MemoryBudget, WaitAbandoned


def _in_thread(target) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = target()
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_hold_waits_until_it_fits_next_to_the_others_then_proceeds() -> None:
    budget = MemoryBudget(100, poll_seconds=0.01)
    with budget.hold(70):
        thread, out = _in_thread(lambda: _hold(budget, 50))
        time.sleep(0.2)
        assert thread.is_alive() and budget.used == 70  # 70 + 50 > 100: it waits
    thread.join(5)
    assert out["value"].is_set() and budget.used == 0


def _hold(budget: MemoryBudget, nbytes: int, abandoned: threading.Event | None = None) -> threading.Event:
    """Hold ``nbytes`` (after waiting for them) and release them; the event says the hold was entered."""
    entered = threading.Event()
    with budget.hold(nbytes, abandoned):
        entered.set()
    return entered


def test_holds_that_fit_together_do_not_wait() -> None:
    budget = MemoryBudget(100)
    with budget.hold(60), budget.hold(40):
        assert budget.used == 100


def test_a_wait_ends_when_the_check_is_given_up_and_more_than_the_budget_is_never_held() -> None:
    budget = MemoryBudget(100, poll_seconds=0.01)
    abandoned = threading.Event()
    with budget.hold(90):
        thread, out = _in_thread(lambda: _hold(budget, 20, abandoned))
        time.sleep(0.1)
        assert thread.is_alive()
        abandoned.set()
        thread.join(5)
    assert isinstance(out["error"], WaitAbandoned) and budget.used == 0
    with pytest.raises(ValueError, match="never fit"), budget.hold(101):
        pass


def test_an_m4a_whose_index_exceeds_the_budget_is_refused_before_it_is_opened(media) -> None:
    data = media.bytes("speech.m4a")
    packets = mp4_audio_packets(io.BytesIO(data), len(data))
    assert packets
    budget = MemoryBudget(packets * MP4_INDEX_BYTES_PER_PACKET - 1)

    outcome = validate_audio(io.BytesIO(data), "m4a", budget)

    assert not outcome.passed and outcome.code == "invalid_audio_format"
    assert f"index lists {packets:,} audio packets" in outcome.message
    assert "Split the recording into shorter files" in outcome.message
    assert validate_audio(io.BytesIO(data), "m4a", MemoryBudget(packets * MP4_INDEX_BYTES_PER_PACKET)).passed


def test_an_m4a_check_waits_for_its_index_to_fit_and_gives_it_back(media) -> None:
    data = media.bytes("speech.m4a")
    need = mp4_audio_packets(io.BytesIO(data), len(data)) * MP4_INDEX_BYTES_PER_PACKET
    budget = MemoryBudget(need, poll_seconds=0.01)
    with budget.hold(1):  # another check holds a byte: this index no longer fits
        thread, out = _in_thread(lambda: validate_audio(io.BytesIO(data), "m4a", budget))
        time.sleep(0.3)
        assert thread.is_alive() and not out
    thread.join(30)
    assert out["value"].passed and budget.used == 0

    abandoned = threading.Event()
    abandoned.set()
    with budget.hold(1), pytest.raises(WaitAbandoned):
        validate_audio(io.BytesIO(data), "m4a", budget, abandoned)
    assert validate_audio(io.BytesIO(media.bytes("speech.wav")), "wav", MemoryBudget(1)).passed  # holds nothing
