"""Side-by-side evaluation of the base and the custom model.

Contract: :func:`compare_wer` decodes every test utterance with each model (base, text-only,
text + audio) and returns their corpus WERs with S/D/I, the gain of each step and up to
``max_examples`` per-utterance examples; :func:`compare_perplexity` scores the same test
sentences (capped at ``max_words`` words, whole sentences, in order) with the custom ARPA model
and with the base binary LM (see :mod:`perplexity` for conventions).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from voxtrain_trainer.ml.backoff_lm import BackoffLM
from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.decoder import DecoderConfig, SpeechDecoder
from voxtrain_trainer.ml.perplexity import BaseLMScorer, custom_perplexity
from voxtrain_trainer.ml.wer import word_error_rate

PERPLEXITY_NOTE = (
    "Perplexity counts </s> and leaves OOV words out (SRILM convention), for both models. "
    "The base LM is PocketSphinx's shipped en-us.lm.bin, scored with PocketSphinx's own n-gram "
    "code; its vocabulary differs from the custom one, so read perplexity together with OOV rate."
)


def _relative(base: float | None, custom: float | None) -> float | None:
    if base is None or custom is None or base == 0:
        return None
    return (base - custom) / base


def compare_wer(
    utterances: Sequence[tuple[str, bytes, str]],
    models: Sequence[tuple[str, DecoderConfig]],
    max_examples: int = 25,
    progress: Callable[[float], None] = lambda fraction: None,
) -> dict:
    """Decode ``(label, pcm, reference)`` utterances with every named model; WERs and examples.

    The first model is the reference point ("base"), the last the one shipped ("custom"): the result
    has an entry per model name, ``custom`` (a copy of the last), ``relative_improvement`` of the
    shipped model over the first, ``steps`` (each model's relative gain over the one before it)
    and per-utterance examples with every model's hypothesis.
    """
    hyps: dict[str, list[str]] = {}
    results: dict[str, dict] = {}
    labels: list[tuple[str, str]] = []  # taken on the first pass: each utterance's audio is read once per model
    for n, (name, config) in enumerate(models):
        decoder = SpeechDecoder(config)
        out = []
        for i, (label, pcm, ref) in enumerate(utterances):
            if n == 0:
                labels.append((label, ref))
            out.append(decoder.decode(pcm).text)
            progress((n + (i + 1) / len(utterances)) / len(models))
        refs = [ref for _, ref in labels]
        hyps[name] = out
        results[name] = {**word_error_rate(refs, out).to_dict(), "lw": decoder.lw, "wip": decoder.wip}
    names = [name for name, _ in models]
    first, last = names[0], names[-1]
    steps = [
        {"from": a, "to": b, "relative_improvement": _relative(results[a]["wer"], results[b]["wer"])}
        for a, b in itertools.pairwise(names)
    ]
    examples = [
        {"utterance": label, "reference": ref, **{name: hyps[name][i] for name in names}, "custom": hyps[last][i]}
        for i, (label, ref) in enumerate(labels[:max_examples])
    ]
    return {
        **results,
        "models": names,
        "custom": results[last],
        "shipped": last,
        "relative_improvement": _relative(results[first]["wer"], results[last]["wer"]),
        "steps": steps,
        "examples": examples,
    }


def cap_sentences(sentences: Sequence[str], max_words: int) -> list[str]:
    """Leading whole sentences holding at most ``max_words`` words (at least one sentence)."""
    kept: list[str] = []
    words = 0
    for sentence in sentences:
        n = len(sentence.split())
        if kept and words + n > max_words:
            break
        kept.append(sentence)
        words += n
    return kept


def compare_perplexity(lm: BackoffLM, sentences: Sequence[str], max_words: int) -> dict:
    """Perplexity and OOV of both models on the same (capped) test sentences."""
    text = cap_sentences(sentences, max_words)
    custom = custom_perplexity(lm, text)
    base = BaseLMScorer(base_model_files().lm).perplexity(text)
    return {
        "base": base.to_dict(),
        "custom": custom.to_dict(),
        "relative_improvement": _relative(base.perplexity, custom.perplexity),
        "capped": len(text) < len(sentences),
        "note": PERPLEXITY_NOTE,
    }
