"""The shared cue parsers: reading a block at a time gives the sink what reading line by line gives it.

The validator's golden tests hold its findings; this holds what the trainer relies on: every cue (times
and words) comes out the same whether runs of plain cues are taken at once or fed line by line, on the
golden corpus of valid and hostile subtitle files.
"""

from __future__ import annotations

import io

import pytest

from tests.validator.golden_corpus import transcript_cases
from voxtrain_shared.subtitles import SrtCues, VttCues, fixed_ms
from voxtrain_shared.text_lines import TextProblem, Utf8Lines

# The cases up to 200 KB (370 of 439; read in 4 KiB pieces, so they still cross many block boundaries): the
# megabyte ones take minutes line by line and add shapes the smaller ones already have.
_CASES = [
    (name, ext.lstrip("."), content)
    for name, ext, content in transcript_cases()
    if ext.lstrip(".") != "txt" and len(content) <= 200_000
]


class _Recorder:
    """A CueSink that records what it is given; takes runs of plain cues or declines them."""

    def __init__(self, take_runs: bool) -> None:
        self.events: list[tuple[object, ...]] = []
        self._take_runs = take_runs

    @property
    def cues(self) -> int:
        return sum(1 for event in self.events if event[0] == "cue")

    def cue(self, line: int, start_ms: int, end_ms: int, text: str) -> None:
        self.events.append(("cue", start_ms, end_ms, " ".join(text.split())))

    def plain_cues(self, starts: list[str], ends: list[str], texts: list[str], last_line: int) -> bool:
        if not self._take_runs:
            return False
        for start, end, text in zip(starts, ends, texts, strict=True):
            self.cue(last_line, fixed_ms(start), fixed_ms(end), text)
        return True

    def error(self, message: str, *, line: int | None = None) -> None:
        self.events.append(("error", message, line))

    def warn(self, message: str) -> None:
        self.events.append(("warn", message))


def _read(ext: str, content: bytes, *, blocks: bool, take_runs: bool) -> list[tuple[object, ...]]:
    sink = _Recorder(take_runs)
    parser = VttCues(sink) if ext == "vtt" else SrtCues(sink)
    lines = Utf8Lines(io.BytesIO(content), chunk_bytes=4096)
    try:
        if blocks:
            for first, block in lines.blocks():
                parser.feed_block(first, block)
        else:
            for number, line in lines:
                parser.feed(number, line)
        parser.finish()
    except TextProblem as problem:
        sink.events.append(("stopped", problem.message))
    return sink.events


@pytest.mark.parametrize(("name", "ext", "content"), _CASES, ids=[case[0] for case in _CASES])
def test_blocks_give_the_sink_what_lines_give_it(name: str, ext: str, content: bytes) -> None:
    by_line = _read(ext, content, blocks=False, take_runs=False)
    assert _read(ext, content, blocks=True, take_runs=False) == by_line
    # Runs taken at once: the same cues (a run is only offered when no problem is in it, so no finding moves
    # except those of the cue checks, which belong to the sink).
    cues = [event for event in by_line if event[0] == "cue"]
    taken = _read(ext, content, blocks=True, take_runs=True)
    assert [event for event in taken if event[0] == "cue"] == cues
    assert [event for event in taken if event[0] != "cue"] == [event for event in by_line if event[0] != "cue"]
