"""Render ``model_card.md``: what a model was trained on, how, and how well it does.

Contract: :func:`render_model_card` is a pure function of the metrics dict that
:func:`voxtrain_trainer.ml.pipeline.run_training` writes to ``metrics.json``.
"""

from __future__ import annotations


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _wer_section(wer: dict | None) -> list[str]:
    if not wer:
        return ["No test audio was available, so word error rate was not measured.", ""]
    lines = [
        "| model | WER | substitutions | deletions | insertions | reference words | lw | wip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("base", "custom"):
        r = wer[name]
        lines.append(
            f"| {name} | {_pct(r['wer'])} | {r['substitutions']} | {r['deletions']} | {r['insertions']} "
            f"| {r['reference_words']} | {_num(r['lw'])} | {_num(r['wip'])} |"
        )
    lines += ["", f"Relative WER reduction: {_pct(wer['relative_improvement'])}.", ""]
    if wer.get("examples"):
        lines += ["Examples:", "", "| utterance | reference | base | custom |", "|---|---|---|---|"]
        for e in wer["examples"][:10]:
            lines.append(f"| {e['utterance']} | {e['reference']} | {e['base']} | {e['custom']} |")
        lines.append("")
    return lines


def _ppl_section(ppl: dict | None) -> list[str]:
    if not ppl:
        return ["No test text was available, so perplexity was not measured.", ""]
    lines = ["| model | perplexity | OOV rate | words | sentences |", "|---|---|---|---|---|"]
    for name in ("base", "custom"):
        r = ppl[name]
        lines.append(
            f"| {name} | {_num(r['perplexity'], 1)} | {_pct(r['oov_rate'])} | {r['words']} | {r['sentences']} |"
        )
    lines += ["", ppl["note"], ""]
    return lines


def render_model_card(metrics: dict) -> str:
    """Markdown model card for ``metrics`` (see module contract)."""
    data, lm, lex, dec = metrics["data"], metrics["lm"], metrics["lexicon"], metrics["decoder"]
    ev = metrics["evaluation"]
    fallback = [d for d in lm["discounts"] if d["fallback"]]
    lines = [
        "# Custom speech model",
        "",
        "A domain n-gram language model and pronunciation lexicon for the PocketSphinx en-US "
        "acoustic model, trained offline on the customer's text.",
        "",
        "## Data",
        "",
        f"- Transcript files: {data['transcript_files']}; train audio pairs: {data['train_pairs']}; "
        f"test text files: {data['test_text_files']}; test audio pairs: {data['test_pairs']}.",
        f"- Training text after normalisation: {data['training_sentences']} sentences, {data['training_words']} words.",
        f"- Test text: {data['test_sentences']} sentences.",
    ]
    if metrics["heldout"]:
        lines.append(
            "- **Held out**: there was no TEST data, so part of the training data was held out for evaluation."
        )
    lines += [f"- {note}" for note in data.get("notes", [])]
    lines += [
        "",
        "## Model",
        "",
        f"- Language model: order {lm['order']}, {lm['smoothing']}; n-grams per order: "
        f"{', '.join(str(c) for c in lm['ngram_counts'])}; vocabulary {lm['vocabulary_size']} words.",
        "- Discounts (D1 / D2 / D3+) per order: "
        + "; ".join(f"{d['order']}: {d['d1']:.3f} / {d['d2']:.3f} / {d['d3_plus']:.3f}" for d in lm["discounts"]),
    ]
    if fallback:
        lines.append(
            "- Fallback discounts were used for order(s) "
            + ", ".join(str(d["order"]) for d in fallback)
            + f" ({fallback[0]['reason']})."
        )
    lines += [
        f"- Lexicon: {lex['words']} words, {lex['from_base']} from the base dictionary, "
        f"{lex['from_g2p']} new words from espeak-ng G2P; {lex['unmapped_count']} words could not be "
        "given a pronunciation and were mapped to <unk>"
        + (f" (e.g. {', '.join(lex['unmapped'][:10])})." if lex["unmapped"] else "."),
        f"- Decoder weights: lw {dec['lw']}, wip {dec['wip']} "
        + ("(tuned on the train audio)." if dec["tuned"] else "(PocketSphinx defaults: no train audio to tune on)."),
        "",
        "## Results: base vs custom",
        "",
        "### Word error rate (test audio)",
        "",
        *_wer_section(ev["wer"]),
        "### Perplexity and OOV (test text)",
        "",
        *_ppl_section(ev["perplexity"]),
        "## Settings",
        "",
        *[f"- {k}: {v}" for k, v in metrics["settings"].items()],
        "",
        "## Stage durations (s)",
        "",
        *[f"- {k}: {v}" for k, v in metrics["durations"].items()],
        "",
    ]
    return "\n".join(lines)
