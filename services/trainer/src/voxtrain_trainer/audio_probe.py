"""How long an audio file plays, read from its container (headers or packet timestamps, no decoding)."""

from __future__ import annotations

from pathlib import Path

import av


def duration_seconds(path: Path) -> float:
    """Seconds of audio in ``path``; ValueError if it is not audio PyAV can read."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError("no audio stream")
            if container.duration:
                return float(container.duration / av.time_base)
            stream = container.streams.audio[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            total = 0.0
            for packet in container.demux(stream):
                if packet.duration and stream.time_base:
                    total += float(packet.duration * stream.time_base)
            return total
    except av.FFmpegError as exc:
        raise ValueError(str(exc)) from None
