"""Offline grapheme-to-phoneme for words the base dictionary lacks: espeak-ng -> CMU phones.

Contract of :func:`espeak_pronunciations`: for each word it returns a list of one or more
pronunciations, each a tuple of phones of the 39-phone CMU set of the en-us acoustic model, or
no entry when espeak-ng's output holds a sound with no CMU counterpart. espeak-ng is called once
per batch of words (one word per line), never once per word.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence

CMU_PHONES = frozenset(
    [
        "AA",
        "AE",
        "AH",
        "AO",
        "AW",
        "AY",
        "B",
        "CH",
        "D",
        "DH",
        "EH",
        "ER",
        "EY",
        "F",
        "G",
        "HH",
        "IH",
        "IY",
        "JH",
        "K",
        "L",
        "M",
        "N",
        "NG",
        "OW",
        "OY",
        "P",
        "R",
        "S",
        "SH",
        "T",
        "TH",
        "UH",
        "UW",
        "V",
        "W",
        "Y",
        "Z",
        "ZH",
    ]
)
_FLAP = "\u027e"  # espeak's flap; CMU writes it T or D, so both readings are offered

# espeak-ng en-us IPA phonemes (stress and length marks removed) -> CMU phones
_IPA_TO_CMU: dict[str, tuple[str, ...]] = {
    # vowels and diphthongs
    "ɑ": ("AA",),
    "ɒ": ("AA",),
    "a": ("AA",),
    "æ": ("AE",),
    "ʌ": ("AH",),
    "ə": ("AH",),
    "ɐ": ("AH",),
    "ɔ": ("AO",),
    "o": ("OW",),
    "aʊ": ("AW",),
    "aɪ": ("AY",),
    "ɛ": ("EH",),
    "e": ("EY",),
    "ɚ": ("ER",),
    "ɜ": ("ER",),
    "eɪ": ("EY",),
    "ɪ": ("IH",),
    "ᵻ": ("IH",),
    "i": ("IY",),
    "oʊ": ("OW",),
    "ɔɪ": ("OY",),
    "ʊ": ("UH",),
    "u": ("UW",),
    "y": ("UW",),
    # r-coloured and reduced combinations espeak emits as one phoneme
    "ɑɹ": ("AA", "R"),
    "ɔɹ": ("AO", "R"),
    "oɹ": ("AO", "R"),
    "ɪɹ": ("IH", "R"),
    "ɛɹ": ("EH", "R"),
    "ʊɹ": ("UH", "R"),
    "ɜɹ": ("ER",),
    "aɪɚ": ("AY", "ER"),
    "aʊɚ": ("AW", "ER"),
    "aɪə": ("AY", "AH"),
    "iə": ("IY", "AH"),
    "əl": ("AH", "L"),
    "n̩": ("AH", "N"),
    "l̩": ("AH", "L"),
    "m̩": ("AH", "M"),
    # consonants
    "b": ("B",),
    "tʃ": ("CH",),
    "d": ("D",),
    "ð": ("DH",),
    "f": ("F",),
    "ɡ": ("G",),
    "g": ("G",),
    "h": ("HH",),
    "ç": ("HH",),
    "dʒ": ("JH",),
    "k": ("K",),
    "x": ("K",),
    "l": ("L",),
    "ɫ": ("L",),
    "ɬ": ("L",),
    "m": ("M",),
    "n": ("N",),
    "ŋ": ("NG",),
    "p": ("P",),
    "ɹ": ("R",),
    "r": ("R",),
    "s": ("S",),
    "ʃ": ("SH",),
    "t": ("T",),
    "ʔ": ("T",),
    "θ": ("TH",),
    "v": ("V",),
    "w": ("W",),
    "ʍ": ("W",),
    "j": ("Y",),
    "z": ("Z",),
    "ʒ": ("ZH",),
}
_MARKS = str.maketrans("", "", "ˈˌː'ˑ")
_LONGEST = max(len(k) for k in _IPA_TO_CMU)
BATCH_SIZE = 2000


class G2PUnavailable(RuntimeError):
    """espeak-ng is not installed or failed to run."""


def _map_phoneme(symbol: str) -> list[str] | None:
    """CMU phones of one espeak phoneme, splitting it greedily when it is a known sequence."""
    symbol = symbol.translate(_MARKS)
    out: list[str] = []
    i = 0
    while i < len(symbol):
        for size in range(min(_LONGEST, len(symbol) - i), 0, -1):
            piece = symbol[i : i + size]
            if piece in _IPA_TO_CMU:
                out.extend(_IPA_TO_CMU[piece])
                i += size
                break
        else:
            return None
    return out


def _map_word(ipa: str, flap: str) -> tuple[str, ...] | None:
    """CMU phones of one word's IPA, reading every flap as the IPA consonant ``flap``."""
    phones: list[str] = []
    for symbol in ipa.replace(" ", "_").split("_"):
        if not symbol.translate(_MARKS):
            continue
        mapped = _map_phoneme(symbol.replace(_FLAP, flap))
        if mapped is None:
            return None
        phones.extend(mapped)
    return tuple(phones) or None


def ipa_to_cmu(ipa: str) -> list[tuple[str, ...]] | None:
    """Map one word's espeak-ng IPA (phonemes separated by ``_``, words by spaces) to CMU.

    Returns one pronunciation, or two when the word has a flap (read as T, then as D), or
    ``None`` when some sound has no CMU counterpart.
    """
    as_t = _map_word(ipa, "t")
    if as_t is None or _FLAP not in ipa:
        return None if as_t is None else [as_t]
    as_d = _map_word(ipa, "d")
    return [as_t] if as_d is None or as_d == as_t else [as_t, as_d]


def _espeak_batch(words: Sequence[str], voice: str) -> list[str]:
    """espeak-ng IPA of each word, one output line per input line."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise G2PUnavailable("espeak-ng is not installed (Debian package espeak-ng)")
    # A full stop per line makes every word its own clause, so espeak prints one line per word.
    text = "".join(f"{w}.\n" for w in words)
    try:
        result = subprocess.run(
            [exe, "-q", "-v", voice, "--ipa", "--sep=_", "--stdin"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise G2PUnavailable(f"espeak-ng failed: {exc}") from exc
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _ipa_for(words: Sequence[str], voice: str) -> dict[str, str]:
    """IPA per word; a batch whose output does not line up is split until it does."""
    if not words:
        return {}
    lines = _espeak_batch(words, voice)
    if len(lines) == len(words):
        return dict(zip(words, lines, strict=True))
    if len(words) == 1:
        return {words[0]: " ".join(lines)} if lines else {}
    middle = len(words) // 2
    return {**_ipa_for(words[:middle], voice), **_ipa_for(words[middle:], voice)}


def espeak_pronunciations(
    words: Iterable[str],
    voice: str = "en-us",
    mapper: Callable[[str], list[tuple[str, ...]] | None] = ipa_to_cmu,
) -> dict[str, list[tuple[str, ...]]]:
    """CMU pronunciations from espeak-ng for ``words`` (see module contract); ``mapper`` turns IPA into CMU."""
    unique = sorted(set(words))
    result: dict[str, list[tuple[str, ...]]] = {}
    for start in range(0, len(unique), BATCH_SIZE):
        for word, ipa in _ipa_for(unique[start : start + BATCH_SIZE], voice).items():
            prons = mapper(ipa)
            if prons:
                result[word] = prons
    return result
