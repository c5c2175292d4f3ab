"""Side-by-side evaluation of the base and the custom model.

Contract: :func:`compare_wer` decodes every test utterance with both decoders and returns
their corpus WERs plus up to ``max_examples`` per-utterance examples; :func:`compare_perplexity`
scores the same test sentences (capped at ``max_words`` words, whole sentences, in order) with
the custom ARPA model and with the base binary LM (see :mod:`perplexity` for conventions).
"""

from __future__ import annotations

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
    base: DecoderConfig,
    custom: DecoderConfig,
    max_examples: int = 25,
    progress: Callable[[float], None] = lambda fraction: None,
) -> dict:
    """Decode ``(label, pcm, reference)`` utterances with both models; WERs and examples."""
    hyps: dict[str, list[str]] = {}
    weights: dict[str, dict] = {}
    for n, (name, config) in enumerate((("base", base), ("custom", custom))):
        decoder = SpeechDecoder(config)
        weights[name] = {"lw": decoder.lw, "wip": decoder.wip}
        out = []
        for i, (_, pcm, _) in enumerate(utterances):
            out.append(decoder.decode(pcm).text)
            progress((n + (i + 1) / len(utterances)) / 2)
        hyps[name] = out
    refs = [ref for _, _, ref in utterances]
    base_wer = word_error_rate(refs, hyps["base"])
    custom_wer = word_error_rate(refs, hyps["custom"])
    examples = [
        {"utterance": label, "reference": ref, "base": b, "custom": c}
        for (label, _, ref), b, c in list(zip(utterances, hyps["base"], hyps["custom"], strict=True))[:max_examples]
    ]
    return {
        "base": {**base_wer.to_dict(), **weights["base"]},
        "custom": {**custom_wer.to_dict(), **weights["custom"]},
        "relative_improvement": _relative(base_wer.wer, custom_wer.wer),
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
