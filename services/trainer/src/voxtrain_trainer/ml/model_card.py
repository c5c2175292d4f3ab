"""Render ``model_card.md``: what a model was trained on, how, and how well it does.

Contract: :func:`render_model_card` is a pure function of the metrics dict that
:func:`voxtrain_trainer.ml.pipeline.run_training` writes to ``metrics.json``.
"""

from __future__ import annotations


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


MODEL_NAMES = {
    "base": "base (shipped en-US model)",
    "text_only": "text only (custom LM + lexicon)",
    "text_audio": "text + audio (adapted acoustic model)",
}


def _wer_section(wer: dict | None) -> list[str]:
    if not wer:
        return ["No test audio was available, so word error rate was not measured.", ""]
    names = wer.get("models", ["base", "custom"])
    lines = [
        "| model | WER | substitutions | deletions | insertions | reference words | lw | wip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        r = wer[name]
        lines.append(
            f"| {MODEL_NAMES.get(name, name)} | {_pct(r['wer'])} | {r['substitutions']} | {r['deletions']} "
            f"| {r['insertions']} | {r['reference_words']} | {_num(r['lw'])} | {_num(r['wip'])} |"
        )
    lines.append("")
    for step in wer.get("steps", []):
        lines.append(f"- {step['from']} -> {step['to']}: relative WER reduction {_pct(step['relative_improvement'])}.")
    lines += [f"- Shipped model vs base: relative WER reduction {_pct(wer['relative_improvement'])}.", ""]
    if wer.get("examples"):
        lines += ["Examples:", "", "| utterance | reference | " + " | ".join(names) + " |"]
        lines.append("|---|---|" + "---|" * len(names))
        for e in wer["examples"][:10]:
            lines.append(f"| {e['utterance']} | {e['reference']} | " + " | ".join(e.get(n, "") for n in names) + " |")
        lines.append("")
    return lines


def _search_line(search: dict | None) -> list[str]:
    if not search:
        return []
    options = ", ".join(f"{k} {v}" for k, v in search["options"].items()) or "PocketSphinx's defaults"
    return [f"- Decoder search: {search['name']} ({options}); the base model decodes with PocketSphinx's defaults."]


def _general_section(mix: dict | None) -> list[str]:
    if not mix:
        return []
    if "skipped" in mix:
        return [f"- General English: not mixed in ({mix['skipped']})."]
    how = "tuned on held-out text" if mix["weight_tuned"] else "default weight"
    counts = mix.get("general_ngram_counts") or []
    phrases = f" and its {' / '.join(f'{c}' for c in counts[1:])} commonest longer n-grams" if counts[1:] else ""
    fallback = f" A smaller share than usual: {mix['general_fallback']}." if mix.get("general_fallback") else ""
    return [
        f"- General English: the {mix['general_words']} commonest words of the base LM{phrases} are mixed in with "
        f"domain weight {mix['domain_weight']} ({how}).{fallback}"
    ]


def _acoustic_section(acoustic: dict | None) -> list[str]:
    if not acoustic:
        return []
    if acoustic["method"] == "none":
        return [f"- Acoustic model: the base en-US model, not adapted ({acoustic['reason']}).", ""]
    dev = ", ".join(f"{k} {_pct(v)}" for k, v in acoustic["dev_wer"].items())
    return [
        f"- Acoustic model: base en-US adapted with **{acoustic['method']}** on {acoustic['utterances']} "
        f"utterances ({acoustic['seconds']:.0f} s of audio); WER on {acoustic['dev_utterances']} held-out train "
        f"pairs: {dev}. {acoustic['reason']}.",
        "",
    ]


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
        "acoustic model, trained offline on the customer's text (and adapted to their audio when that helped).",
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
        f"{lex['from_g2p']} new words from the G2P ({lex.get('from_g2p_with_variant', 0)} with a variant); "
        f"{lex['unmapped_count']} words could not be "
        "given a pronunciation and were mapped to <unk>"
        + (f" (e.g. {', '.join(lex['unmapped'][:10])})." if lex["unmapped"] else "."),
        *(
            [
                f"- G2P ({lex['g2p']['method']}, trained on the base dictionary) phone error rate on "
                f"{lex['g2p']['heldout_words']} held-out CMUdict words: {_pct(lex['g2p']['phone_error_rate'])} "
                f"(espeak-ng table {_pct(lex['g2p']['phone_error_rate_espeak'])})."
            ]
            if lex.get("g2p")
            else []
        ),
        *_general_section(lm.get("general_english")),
        f"- Decoder weights: lw {dec['lw']}, wip {dec['wip']} "
        + ("(tuned on the train audio)." if dec["tuned"] else "(PocketSphinx defaults: no train audio to tune on).")
        + (
            f" With the adapted acoustic model (shipped): lw {adapted['lw']}, wip {adapted['wip']}, tuned with it on "
            f"the {adapted['utterances']} pairs held out from the adaptation."
            if (adapted := dec.get("adapted_tuning"))
            else ""
        ),
        *_search_line(dec.get("search")),
        "",
        *_acoustic_section(metrics.get("acoustic")),
        "## Results: base vs text only vs text + audio",
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
