"""A deterministic corpus of valid and hostile transcripts and manifests for the golden tests.

Every case is made from a seeded random generator, so the same bytes come out on every machine
and run. ``test_validator_golden`` compares what the validator says about each case with the
outcomes recorded in ``golden/*.json``; those were recorded with the line-by-line implementation
that came before the block-wise one (commit a72b330), so any change of a finding, its message or
its position shows up as a failing case. Transcripts were also recorded with reads of 4 KiB
(``transcripts-4kib-reads.json`` holds the cases whose outcome differs from the one with 1 MiB
reads: what is found before an encoding problem depends on the read size), so the block-wise
fast paths are crossed by many block boundaries too.

Run ``python tests/validator/golden_corpus.py --record`` only when a rule is changed on purpose;
the diff of the JSON file is then the review of what changed.
"""

from __future__ import annotations

import argparse
import codecs
import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from voxtrain_shared.vocab import DatasetType
from voxtrain_validator.rules import AmbiguousReference, DatasetRef, DatasetState

GOLDEN = Path(__file__).parent / "golden"
MIB = 1 << 20
SMALL_READS = 4096

Case = tuple[str, str, bytes]  # (name, extension, content)

WORDS = [
    "the",
    "quarterly",
    "revenue",
    "grew",
    "by",
    "twelve",
    "percent",
    "driven",
    "by",
    "custom",
    "speech",
    "models",
    "in",
    "healthcare",
    "and",
    "finance",
    "café",
    "naïve",
    "Ελλάδα",
    "ΣΟΦΙΑ",
    "straße",
    "don't",
    "o’clock",
    "rock'n'roll",
    "42",
    "x_y",
    "_under",
    "3.5",
    "e-mail",
    "user@example.com",
    "«quoted»",
    "'single'",
    "’curly’",
    "½",
    "²",
    "٣",
    "東京",
    "🎙",
]


def _sentence(rng: random.Random, count: int | None = None) -> str:
    n = count if count is not None else rng.randint(1, 12)
    text = " ".join(rng.choice(WORDS) for _ in range(n))
    if rng.random() < 0.3:
        text += rng.choice([".", ",", "!", "?", "…", " -", ";"])
    return text


def _ts(ms: int, sep: str = ".", hours: bool = True, hour_digits: int = 2) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    head = f"{h:0{hour_digits}d}:" if hours or h else ""
    return f"{head}{m:02d}:{s:02d}{sep}{milli:03d}"


# ------------------------------------------------------------------ subtitles


def _vtt_cue(rng: random.Random, start: int, end: int) -> list[str]:
    """One cue block (lines, no blank line after), sometimes broken in one of many ways."""
    lines: list[str] = []
    roll = rng.random()
    if rng.random() < 0.3:
        lines.append(
            rng.choice(
                [
                    str(rng.randint(1, 999)),
                    f"cue-{rng.randint(1, 99)}",
                    "  ",
                    "NOTE x",
                    "STYLE",
                    "id with spaces",
                    "NOTEBOOK",
                    "REGION ",
                ]
            )
        )
    timing = f"{_ts(start)} --> {_ts(end)}"
    if roll < 0.04:
        timing = f"{_ts(start)[:6]}61.000 --> {_ts(end)}"
    elif roll < 0.07:
        timing = f"{_ts(start, ',')} --> {_ts(end, ',')}"
    elif roll < 0.09:
        timing = f"{_ts(start, hours=False)} --> {_ts(end, hours=False)}"
    elif roll < 0.11:
        timing = f"{_ts(start, hour_digits=1)} --> {_ts(end)}"
    elif roll < 0.13:
        timing = f"{_ts(start)} -> {_ts(end)}"
    elif roll < 0.16:
        timing += rng.choice([" align:start position:10%", "\tline:0", "   ", " region:x", " vertical:lr"])
    elif roll < 0.18:
        timing = f"{_ts(start)} --> {_ts(end)[:-1]}"
    elif roll < 0.20:
        timing = f"{_ts(start, hour_digits=3)} --> {_ts(end, hour_digits=3)}"
    elif roll < 0.21:
        timing = "  " + timing
    elif roll < 0.22:
        timing = f"{_ts(start)}-->{_ts(end)}"
    elif roll < 0.23:
        timing = f"{_ts(start)} --> {_ts(end)}0"
    lines.append(timing)
    kind = rng.random()
    if kind < 0.04:
        pass  # no text
    elif kind < 0.07:
        lines.append(rng.choice(["<b> </b>", "   ", "<i></i>", "<v Bob>"]))
    elif kind < 0.12:
        lines.append(f"<v Bob>{_sentence(rng)}</v> <c.x>{_sentence(rng)}</c>")
    elif kind < 0.14:
        lines.append(f"a <b unclosed {_sentence(rng)}")
    elif kind < 0.16:
        lines.append(f"{_sentence(rng)} --> {_sentence(rng)}")
    elif kind < 0.18:
        lines.append(f"{rng.randint(0, 99)}:{rng.randint(10, 59)}:{rng.randint(10, 59)},5 {_sentence(rng)}")
    else:
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            lines.append(_sentence(rng) if rng.random() > 0.05 else "   " + _sentence(rng) + "  ")
    return lines


def _srt_cue(rng: random.Random, index: int, start: int, end: int) -> list[str]:
    lines: list[str] = []
    roll = rng.random()
    if roll < 0.03:
        pass  # no index
    elif roll < 0.05:
        lines.append(f" {index} ")
    elif roll < 0.07:
        lines.append(str(index + rng.choice([2, -1, 10])))
    elif roll < 0.08:
        lines.append(f"{index}.5")
    elif roll < 0.09:
        lines.append(f"0{index}")
    else:
        lines.append(str(index))
    timing = f"{_ts(start, ',')} --> {_ts(end, ',')}"
    roll = rng.random()
    if roll < 0.04:
        timing = f"{_ts(start, ',')[:6]}61,000 --> {_ts(end, ',')}"
    elif roll < 0.07:
        timing = f"{_ts(start)} --> {_ts(end)}"
    elif roll < 0.09:
        timing = f"{_ts(start, ',')[:-4]} --> {_ts(end, ',')[:-4]}"
    elif roll < 0.11:
        timing = f"{_ts(start, ',', hour_digits=1)} --> {_ts(end, ',', hour_digits=3)}"
    elif roll < 0.13:
        timing = f"{_ts(start, ',')} -> {_ts(end, ',')}"
    elif roll < 0.15:
        timing += rng.choice([" X1:10 X2:20", "  ", " extra"])
    elif roll < 0.16:
        timing = f"{_ts(start, ',')}-->{_ts(end, ',')}"
    elif roll < 0.17:
        timing = f"{_ts(start, ',')[:-2]} --> {_ts(end, ',')}"
    elif roll < 0.18:
        timing = f"  {timing}"
    lines.append(timing)
    kind = rng.random()
    if kind < 0.04:
        pass
    elif kind < 0.06:
        lines.append("   ")
    elif kind < 0.10:
        lines += [_sentence(rng), "", _sentence(rng)]  # a blank line inside the cue
    elif kind < 0.12:
        lines.append(f"{rng.randint(1, 9)} {_sentence(rng)}")
    elif kind < 0.13:
        lines += [str(rng.randint(1, 99)), _sentence(rng)]
    elif kind < 0.14:
        lines.append(f"-{_sentence(rng)}")
    elif kind < 0.15:
        lines.append(f"{_ts(start, ',')} is when {_sentence(rng)}")
    elif kind < 0.16:
        lines.append(f"{_sentence(rng)} --> {_sentence(rng)}")
    elif kind < 0.18:
        lines.append(f"<i>{_sentence(rng)}</i>")
    else:
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            lines.append(_sentence(rng))
    return lines


def _times(rng: random.Random, at: int) -> tuple[int, int, int]:
    """(start, end, next at): mostly in order, sometimes overlapping, backwards or zero length."""
    roll = rng.random()
    start = at + rng.choice([0, 0, 10, 500, 1000])
    length = rng.choice([1500, 2000, 800, 3001])
    if roll < 0.03:
        start = max(0, at - 5000)  # before the previous cue
    elif roll < 0.05:
        length = -500  # ends before it starts
    elif roll < 0.07:
        length = 0
    end = max(0, start + length)
    return start, end, max(at, start)


def _subtitles(rng: random.Random, ext: str, cues: int, *, clean: bool = False, gentle: bool = False) -> list[str]:
    lines: list[str] = []
    if ext == "vtt":
        header = rng.random()
        if clean or header > 0.15:
            lines += ["WEBVTT"] + (["Kind: captions", "Language: en"] if rng.random() < 0.3 else []) + [""]
        elif header > 0.10:
            lines += ["WEBVTT - title"]  # no blank line before the first cue
        elif header > 0.05:
            lines += ["WEBVTTX", ""]
        else:
            lines += ["1", "00:00:01.000 --> 00:00:02.000", "srt in disguise", ""]
    at = 0
    for i in range(cues):
        if clean:
            start, end, at = at, at + 1500, at + 2000
            if ext == "vtt":
                block = [f"{_ts(start)} --> {_ts(end)}", _sentence(rng, 8)]
            else:
                block = [str(i + 1), f"{_ts(start, ',')} --> {_ts(end, ',')}", _sentence(rng, 8)]
            lines += [*block, ""]
            continue
        if gentle and rng.random() < 0.9:
            start, end, at = at, at + 1500, at + 2000
            text = [_sentence(rng) for _ in range(rng.choice([1, 1, 2]))]
            if ext == "vtt":
                head = [str(i + 1)] if rng.random() < 0.3 else []
                settings = " align:start" if rng.random() < 0.1 else ""
                lines += [*head, f"{_ts(start)} --> {_ts(end)}{settings}", *text, ""]
            else:
                lines += [str(i + 1), f"{_ts(start, ',')} --> {_ts(end, ',')}", *text, ""]
            continue
        start, end, at = _times(rng, at)
        if ext == "vtt":
            extra = rng.random()
            if extra < 0.03:
                lines += ["NOTE " + _sentence(rng), _sentence(rng), ""]
            elif extra < 0.04:
                lines += ["STYLE", "::cue { color: red }", ""]
            elif extra < 0.045:
                lines += ["REGION", "id:fred width:40%", ""]
            lines += _vtt_cue(rng, start, end)
        else:
            lines += _srt_cue(rng, i + 1, start, end)
        separator = rng.random()
        if separator < 0.04:
            pass  # no blank line before the next cue
        elif separator < 0.08:
            lines += ["", ""]
        elif separator < 0.10:
            lines += ["  "]
        else:
            lines += [""]
    return lines


# ------------------------------------------------------------------ encodings and damage


def _encode(lines: list[str], rng: random.Random, newline: str | None = None, final: bool = True) -> bytes:
    newline = newline or rng.choice(["\n"] * 6 + ["\r\n"] * 3 + ["\r"])
    text = newline.join(lines) + (newline if final else "")
    return text.encode("utf-8")


def _damage(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    roll = rng.random()
    at = rng.randrange(len(data)) if data else 0
    if roll < 0.15:
        return "latin1", data[:at] + "é".encode("latin-1") + data[at:]
    if roll < 0.25:
        return "nul", data[:at] + b"\x00" + data[at:]
    if roll < 0.35:
        return "truncated", data[:at]
    if roll < 0.45:
        return "bom", codecs.BOM_UTF8 + data
    if roll < 0.5:
        return "ff", data[:at] + b"\xff\xfe" + data[at:]
    if roll < 0.55:
        return "cut-char", data[:at] + "€".encode()[:2]
    return "intact", data


def _small_cases(rng: random.Random) -> Iterator[Case]:
    for ext in ("vtt", "srt"):
        for n in range(160):
            gentle = n % 2 == 1
            lines = _subtitles(rng, ext, rng.randint(0, 300 if gentle else 30), gentle=gentle)
            data = _encode(lines, rng, final=rng.random() > 0.1)
            how, data = _damage(data, rng)
            yield f"{ext}-random-{n}-{how}", ext, data
    for n in range(80):
        lines = []
        for _ in range(rng.randint(0, 40)):
            roll = rng.random()
            lines.append(
                ""
                if roll < 0.15
                else "  \t"
                if roll < 0.2
                else f"00:00:0{rng.randint(0, 9)},000 --> 00:00:05,000"
                if roll < 0.23
                else "WEBVTT"
                if roll < 0.25
                else _sentence(rng)
            )
        data = _encode(lines, rng, final=rng.random() > 0.1)
        how, data = _damage(data, rng)
        yield f"txt-random-{n}-{how}", "txt", data


def _crafted_cases() -> Iterator[Case]:
    """Short files that each poke one rule (from the unit tests and their neighbours)."""
    fixed = {
        "vtt": [
            "",
            "WEBVTT",
            "WEBVTT\n",
            "\n",
            "WEBVTT\n\n",
            "webvtt\n\n00:00:01.000 --> 00:00:02.000\nx\n",
            "WEBVTT\n00:00:01.000 --> 00:00:02.000\na\n00:00:03.000 --> 00:00:04.000\nb\n",
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\na\n\nSTYLE\n::cue { color: red }\n",
            "WEBVTT\n\nNOTE nothing here\n",
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000 align:middle bogus:1\nsettings are ignored\n",
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\r\nok\r\n\r\n00:00:02.000 --> 00:00:03.000\rok\r",
            "WEBVTT\n\nid\n00:00:01.000 --> 00:00:02.000\n00:00:03.000 --> 00:00:04.000\nx\n",
            "WEBVTT\n\n100:00:01.000 --> 100:00:02.000\nlong hours\n",
            "WEBVTT\n\n12345678901:00:01.000 --> 12345678901:00:02.000\nhuge hours\n",
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\u0663 digits \u00bd\n",
            "WEBVTT\n\n\u0660\u0660:\u0660\u0660:\u0660\u0661.\u0660\u0660\u0660 --> 00:00:02.000\nx\n",
            "WEBVTT\n\n00:00:01.000 --> 00:00:01.000\nzero\n",
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\n\n\n00:00:03.000 --> 00:00:04.000\nx\n\n\n",
        ],
        "srt": [
            "",
            "\n",
            "1\n",
            "1\n00:00:01,000 --> 00:00:02,000\n",
            "1\n00:00:01,000 --> 00:00:02,000",
            "\nthis is not\na cue\n\n1\n00:00:05,000 --> 00:00:06,000\nok\n",
            "1\n00:00:01,000 --> 00:00:02,000\nok\n\nmore words\n\n2\n00:00:05,000 --> 00:00:06,000\nok\n",
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhi\n",
            "1\n00:00:01,000 --> 00:00:02,000\na\n\n7\n00:00:03,000 --> 00:00:04,000\nb\n\n3\n"
            "00:00:05,000 --> 00:00:06,000\nc\n",
            "1\n00:00:01.000 --> 00:00:02.000\ndots\n",
            "1\n00:00:01,000 --> 00:00:02,000\n2\n00:00:03,000 --> 00:00:04,000\nno blank\n",
            "1\n00:00:01,000 --> 00:00:02,000\n\n\n\n2\n00:00:03,000 --> 00:00:04,000\nx\n\n\n\n",
            "-1\n00:00:01,000 --> 00:00:02,000\nneg\n",
            "1\n\u0660\u0660:00:01,000 --> 00:00:02,000\nx\n",
            "1\n00:00:01,000 --> 00:00:02,000\n12:00:00,000 looks like a time\n\n2\n00:00:03,000 --> 00:00:04,000\nx\n",
            "1\n00:00:01,000 --> 00:00:02,000\nx\n\n2\n00:00:01,000 --> 00:00:01,000\nzero and same start\n",
            "1\n00:00:01,000 --> 00:00:02,000 \nx\n",
            "1\n00:00:01,000 --> 00:00:02,000\n<b> </b>\n",
        ],
        "txt": [
            "",
            " ",
            "\n",
            "\r\n\r\n",
            "a",
            "a\r",
            "a\r\n",
            "a\n\r",
            "\r",
            "x\x0cy\x1cz",
            "ΑΣ ΣΑΣ straße",
            "don't 'quoted' rock'n'roll a''b o’clock ’tis x_y __ _a_ 3.14 1,000",
            "00:00:01,000 --> 00:00:02,000\n",
            "WEBVTT\nhello\n",
        ],
    }
    for ext, texts in fixed.items():
        for n, text in enumerate(texts):
            yield f"{ext}-crafted-{n}", ext, text.encode()
    # Times of every width, and runs of cues that cross from two-digit to three-digit hours.
    for ext, sep in (("vtt", "."), ("srt", ",")):
        for hour_digits, first_hour in ((2, 99), (1, 9), (3, 999), (6, 999_999), (7, 9_999_999)):
            cues = []
            for n in range(250):
                ms = first_hour * 3_600_000 + 3_600_000 - 200 * 1000 + n * 1000
                cues.append(
                    (f"{n + 1}\n" if ext == "srt" else "")
                    + f"{_ts(ms, sep, hour_digits=hour_digits)} --> "
                    + f"{_ts(ms + 800, sep, hour_digits=hour_digits)}"
                    + f"\nwords {n}\n"
                )
            text = ("WEBVTT\n\n" if ext == "vtt" else "") + "\n".join(cues)
            yield f"{ext}-crafted-hours-{hour_digits}-{first_hour}", ext, text.encode()
    no_hours = "\n".join(
        f"{_ts(n * 1000, hours=False)} --> {_ts(n * 1000 + 900, hours=False)}\nw{n}\n" for n in range(300)
    )
    yield "vtt-crafted-no-hours", "vtt", f"WEBVTT\n\n{no_hours}".encode()
    yield "vtt-crafted-bom", "vtt", codecs.BOM_UTF8 + b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhi\n"
    yield "txt-crafted-bom-only", "txt", codecs.BOM_UTF8
    yield "txt-crafted-utf16", "txt", "hello world\n".encode("utf-16")
    yield "srt-crafted-utf16be", "srt", "1\n00:00:01,000 --> 00:00:02,000\nhello\n".encode("utf-16-be")
    yield "vtt-crafted-utf32", "vtt", "WEBVTT\n".encode("utf-32")
    yield "txt-crafted-binary", "txt", bytes(range(256)) * 4


def _big_cases(rng: random.Random) -> Iterator[Case]:
    """Files over the reader's 1 MiB chunk, with damage placed at and around chunk boundaries."""
    for ext in ("txt", "vtt", "srt"):
        if ext == "txt":
            clean = "\n".join(_sentence(rng, 10) for _ in range(17_000)).encode() + b"\n"
        else:
            clean = _encode(_subtitles(rng, ext, 13_000, clean=True), rng, newline="\n")
        assert MIB + 50_000 < len(clean) < 2 * MIB, len(clean)
        yield f"{ext}-big-clean", ext, clean
        yield f"{ext}-big-crlf", ext, clean.replace(b"\n", b"\r\n")
        yield f"{ext}-big-cr", ext, clean.replace(b"\n", b"\r")
        yield f"{ext}-big-bom", ext, codecs.BOM_UTF8 + clean
        for delta in (-2, -1, 0, 1):
            at = MIB + delta
            yield f"{ext}-big-latin1-at-{delta}", ext, clean[:at] + b"\xe9" + clean[at:]
            yield f"{ext}-big-nul-at-{delta}", ext, clean[:at] + b"\x00" + clean[at:]
            yield f"{ext}-big-euro-across-{delta}", ext, clean[:at] + "€".encode() + clean[at:]
            crlf = clean.replace(b"\n", b"\r\n")
            yield f"{ext}-big-crlf-split-{delta}", ext, crlf[:at] + b"\r\n" + crlf[at:]
            yield f"{ext}-big-cr-at-{delta}", ext, clean[:at] + b"\r" + clean[at:]
        yield f"{ext}-big-truncated", ext, clean[: MIB + 40_017]
        yield f"{ext}-big-cut-char", ext, clean[: MIB + 5] + "€".encode()[:1]
        # A mess in the first chunk, a bad byte in the second (and the other way round).
        messy = _encode(_subtitles(random.Random(7), ext, 400), random.Random(8), newline="\n")
        yield f"{ext}-big-messy-then-latin1", ext, messy + clean[:MIB] + b"\xe9" + clean[MIB:]
        yield f"{ext}-big-messy-near-latin1", ext, clean[: MIB - len(messy)] + messy + b"\xe9" + clean[MIB:]
        yield f"{ext}-big-messy-middle", ext, clean[: MIB - 5000] + messy + clean[MIB - 5000 :]
        yield f"{ext}-big-messy-crlf", ext, (clean[: MIB - 5000] + messy + clean[MIB - 5000 :]).replace(b"\n", b"\r\n")
        # One enormous line, ending inside the second chunk or running off the end.
        yield f"{ext}-big-long-line", ext, clean[:1000] + b"y" * (MIB + 10) + b"\n" + clean[1000:]
        yield f"{ext}-big-long-line-unterminated", ext, clean[:1000] + b"z" * (MIB + 5000)
        yield f"{ext}-big-long-line-then-latin1", ext, clean[:1000] + b"w" * (MIB + 10) + b"\xe9\n"
        yield f"{ext}-big-long-cue", ext, clean[:1000] + (b"word " * 30 + b"\n") * 7000 + clean[1000:]
    # Past the vocabulary cap (500,000 distinct words).
    distinct = " ".join(f"w{n:x}" for n in range(520_000)).encode()
    yield "txt-big-vocabulary", "txt", distinct.replace(b" w1", b"\nw1") + b"\n"
    cue_lines = [f"{_ts(n * 10)} --> {_ts(n * 10 + 5)}\nw{n:x} x{n:x} y{n:x}\n" for n in range(190_000)]
    yield "vtt-big-vocabulary", "vtt", ("WEBVTT\n\n" + "\n".join(cue_lines)).encode()


def transcript_cases() -> list[Case]:
    rng = random.Random(20261129)
    return [*_crafted_cases(), *_small_cases(rng), *_big_cases(rng)]


# ------------------------------------------------------------------ manifests


MANIFEST_DATASETS = (
    DatasetRef("a-call", DatasetType.AUDIO, "call.wav", DatasetState.PASSED, 60.0),
    DatasetRef("a-new", DatasetType.AUDIO, "new.wav", DatasetState.PENDING, None),
    DatasetRef("a-broken", DatasetType.AUDIO, "broken.mp3", DatasetState.FAILED, None),
    DatasetRef("t-notes", DatasetType.TRANSCRIPT, "notes.txt", DatasetState.PASSED),
    DatasetRef("t-exam", DatasetType.TEST, "exam.vtt", DatasetState.PASSED),
    DatasetRef("m-other", DatasetType.MANIFEST, "other.jsonl", DatasetState.PASSED),
    DatasetRef("a-twin1", DatasetType.AUDIO, "twin.wav", DatasetState.PASSED, 5.0),
    DatasetRef("a-twin2", DatasetType.AUDIO, "twin.wav", DatasetState.PASSED, 7.0),
)


def manifest_resolver() -> Callable[[str], DatasetRef | None]:
    def resolve(ref: str) -> DatasetRef | None:
        by_id = [d for d in MANIFEST_DATASETS if d.dataset_id == ref]
        if by_id:
            return by_id[0]
        by_name = [d for d in MANIFEST_DATASETS if d.file_name == ref]
        if len(by_name) > 1:
            raise AmbiguousReference(ref, by_name)
        return by_name[0] if by_name else None

    return resolve


def _manifest_line(rng: random.Random) -> str:
    refs = (
        [d.dataset_id for d in MANIFEST_DATASETS]
        + [d.file_name for d in MANIFEST_DATASETS]
        + ["missing.wav", "../etc/passwd", "a/b.wav", "", " ", 42, None]
    )
    entry: dict[str, object] = {"audio": rng.choice(refs[:2] + refs)}
    roll = rng.random()
    if roll < 0.6:
        entry["text"] = rng.choice([_sentence(rng), _sentence(rng), "", "  ", 7])
    elif roll < 0.9:
        entry["transcript"] = rng.choice(["t-notes", "exam.vtt", "notes.txt", "call.wav", "nope"])
    elif roll < 0.95:
        entry["text"], entry["transcript"] = "both", "t-notes"
    if rng.random() < 0.3:
        entry["offset"] = rng.choice([0, 1.5, 30, 59.99, 61, -1, "3", True, float("inf")])
    if rng.random() < 0.3:
        entry["duration"] = rng.choice([1, 0.5, 30, 0, -2, "x", 100])
    if rng.random() < 0.2:
        entry["split"] = rng.choice(["train", "test", "dev", None, 1])
    if rng.random() < 0.05:
        entry["speaker"] = "bob"
    if rng.random() < 0.05:
        del entry["audio"]
    roll = rng.random()
    if roll < 0.04:
        return json.dumps(entry)[:-3]
    if roll < 0.06:
        return json.dumps([entry])
    if roll < 0.07:
        return rng.choice(['"text"', "12", "null", "true", "{", "[" * 2000 + "]" * 2000])
    if roll < 0.10:
        return ""
    if roll < 0.12:
        return "   "
    return json.dumps(entry, ensure_ascii=rng.random() < 0.5)


def manifest_cases() -> list[Case]:
    rng = random.Random(4242)
    cases: list[Case] = []
    for n in range(120):
        data = _encode([_manifest_line(rng) for _ in range(rng.randint(0, 40))], rng, final=rng.random() > 0.1)
        how, data = _damage(data, rng)
        cases.append((f"jsonl-random-{n}-{how}", "jsonl", data))
    good = (
        "\n".join(
            json.dumps({"audio": "a-call", "text": _sentence(rng, 8), "offset": n % 50, "duration": 1.5})
            for n in range(30_000)
        ).encode()
        + b"\n"
    )
    cases.append(("jsonl-big-clean", "jsonl", good))
    for delta in (-1, 0, 1):
        cases.append((f"jsonl-big-latin1-at-{delta}", "jsonl", good[: MIB + delta] + b"\xe9" + good[MIB + delta :]))
    cases.append(("jsonl-big-crlf", "jsonl", good.replace(b"\n", b"\r\n")))
    cases.append(("jsonl-big-mixed", "jsonl", _mixed_manifest(random.Random(2626))))
    return cases


def _mixed_manifest(rng: random.Random) -> bytes:
    """Thousands of plain lines (the fast paths' shape) with hostile and near-plain lines among them.

    Near-plain lines differ from a plain one in one detail (a repeat of an earlier entry, near or
    far, an int or float at the edge of what is accepted, a pending audio, a test split, a second
    object on the line). They are rare (1 line in 400), so many runs of a few hundred lines are
    all plain and many others hold just one such line.
    """
    plain: list[str] = []
    lines: list[str] = []
    for n in range(30_000):
        entry: dict[str, object] = {
            "audio": rng.choice(["a-call", "call.wav", "a-twin1", "a-new"]),
            "text": f"{_sentence(rng)} {n}",
        }
        if rng.random() < 0.5:
            entry["offset"] = rng.choice([0, 0.0, 1, 2.25, n % 3])
        if rng.random() < 0.5:
            entry["duration"] = rng.choice([1, 0.5, 2.75, 1e-9])
        if rng.random() < 0.1:
            entry["split"] = rng.choice(["train", "test"])
        line = json.dumps(entry, ensure_ascii=rng.random() < 0.5)
        roll = rng.random() * 0.06 if rng.random() < 1 / 400 else 1.0
        if roll < 0.005 and plain:
            line = rng.choice(plain[-300:])  # a repeat, often in the same batch
        elif roll < 0.008 and plain:
            line = rng.choice(plain)  # a repeat from far back
        elif roll < 0.03:
            near = dict(entry)
            key, value = rng.choice(
                [
                    ("offset", 2**1000),
                    ("offset", 2**1100),
                    ("duration", 0),
                    ("duration", -0.0),
                    ("offset", -1e-300),
                    ("duration", float("nan")),
                    ("duration", True),
                    ("offset", 59.0),
                    ("duration", 58.04),
                    ("duration", 60.06),
                    ("audio", "a-new"),
                    ("audio", "new.wav"),
                    ("audio", "twin.wav"),
                    ("split", ["train"]),
                    ("split", "dev"),
                    ("text", " \t"),
                    ("speaker", "bob"),
                ]
            )
            near[key] = value
            line = json.dumps(near)
        elif roll < 0.04:
            line = line + " " + line if rng.random() < 0.5 else line + " "
        elif roll < 0.06:
            line = _manifest_line(rng)
        else:
            plain.append(line)
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def run_case(case: Case, chunk_bytes: int = MIB) -> dict[str, object]:
    """What the validator says about one case (reading ``chunk_bytes`` at a time), JSON-ready."""
    from voxtrain_validator.rules import validate_manifest, validate_transcript

    _name, ext, data = case
    if ext == "jsonl":
        outcome = validate_manifest(io.BytesIO(data), manifest_resolver())
    else:
        outcome = validate_transcript(io.BytesIO(data), ext, chunk_bytes=chunk_bytes)
    return outcome.to_dict()


def _write(name: str, results: dict[str, object]) -> None:
    path = GOLDEN / name
    path.write_text(json.dumps(results, indent=0, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"{path}: {len(results)} cases")


def record() -> None:
    GOLDEN.mkdir(exist_ok=True)
    transcripts = {case[0]: run_case(case) for case in transcript_cases()}
    _write("transcripts.json", transcripts)
    small_reads = {case[0]: run_case(case, SMALL_READS) for case in transcript_cases()}
    _write("transcripts-4kib-reads.json", {k: v for k, v in small_reads.items() if v != transcripts[k]})
    _write("manifests.json", {case[0]: run_case(case) for case in manifest_cases()})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", action="store_true", help="overwrite golden/*.json with today's outcomes")
    if parser.parse_args().record:
        record()
