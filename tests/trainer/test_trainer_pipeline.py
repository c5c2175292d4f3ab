"""End to end: domain text + espeak-ng speech -> custom model that beats the base model."""

from __future__ import annotations

import dataclasses
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.medical_domain import ADAPTATION_SENTENCES, TEST_SENTENCES, TRAINING_TEXT
from tests.trainer.recordings import spoken as spoken_sentences
from voxtrain_trainer.ml import (
    AudioPair,
    TextFile,
    TrainingError,
    TrainingInputs,
    TrainingSettings,
    load_decoder,
    run_training,
    transcribe,
    transcribe_with,
)
from voxtrain_trainer.ml.arpa import read_arpa
from voxtrain_trainer.ml.audio import load_pcm
from voxtrain_trainer.ml.g2p import espeak_pronunciations

# Small grid: the test must stay fast on two shared cores (3 points x 3 utterances). The test
# sentences use domain words only, so the domain-only LM is measured here (general-English mixing
# has its own tests and benchmark: it trades some in-domain accuracy for ordinary words).
SETTINGS = TrainingSettings(lw_grid=(6.5, 10.0), wip_grid=(0.65,), max_tuning_decodes=9, general_words=0)


@pytest.fixture(scope="module")
def trained(spoken, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("run")
    notes = work / "notes.txt"
    notes.write_text(TRAINING_TEXT, encoding="utf-8")
    inputs = TrainingInputs(
        transcripts=[TextFile(notes)],
        train_pairs=[AudioPair(path, text) for path, text in spoken.tuning],
        test_pairs=[AudioPair(path, text) for path, text in spoken.test],
    )
    events: list[tuple[str, float]] = []
    result = run_training(inputs, work, SETTINGS, lambda stage, pct: events.append((stage, pct)))
    return result, events


def test_no_test_sentence_is_in_the_training_text() -> None:
    training = {line.strip().lower() for line in TRAINING_TEXT.splitlines()}
    assert not training & {s.lower() for s in TEST_SENTENCES}


def test_custom_model_beats_the_base_model(trained) -> None:
    result, _ = trained
    wer = result.metrics["evaluation"]["wer"]
    base, custom = wer["base"], wer["custom"]
    print(
        f"\nWER base {base['wer']:.3f} (S{base['substitutions']} D{base['deletions']} I{base['insertions']}) "
        f"-> custom {custom['wer']:.3f} (S{custom['substitutions']} D{custom['deletions']} I{custom['insertions']})"
    )
    assert base["wer"] > 0.5
    assert custom["wer"] < 0.35
    assert custom["wer"] < 0.5 * base["wer"]
    for side in (base, custom):
        assert side["reference_words"] == sum(len(s.split()) for s in TEST_SENTENCES) + 1  # "x-ray" -> "x ray"
        assert side["substitutions"] + side["deletions"] + side["hits"] == side["reference_words"]
        assert side["wer"] == pytest.approx(
            (side["substitutions"] + side["deletions"] + side["insertions"]) / side["reference_words"]
        )


def test_perplexity_and_oov_side_by_side(trained) -> None:
    ppl = trained[0].metrics["evaluation"]["perplexity"]
    assert ppl["custom"]["oov_rate"] < ppl["base"]["oov_rate"]
    assert ppl["custom"]["perplexity"] < ppl["base"]["perplexity"]
    assert ppl["custom"]["words"] == ppl["base"]["words"] > 0


def test_metrics_describe_the_run(trained) -> None:
    m = trained[0].metrics
    assert m["heldout"] is False
    assert m["lm"]["order"] == 3 and len(m["lm"]["ngram_counts"]) == 3
    assert m["lm"]["discount_fallback"] is True  # 40 sentences are too few for Chen-Goodman
    assert all(d["reason"] for d in m["lm"]["discounts"] if d["fallback"])
    assert m["lexicon"]["from_g2p"] >= 5 and "metoprolol" in m["lexicon"]["g2p_examples"]
    assert m["decoder"]["tuned"] and m["decoder"]["tuning"]["decodes"] <= SETTINGS.max_tuning_decodes
    assert m["decoder"]["tuning"]["lm"] == "LM without the train pairs' transcripts"
    assert (m["decoder"]["lw"], m["decoder"]["wip"]) in {(g["lw"], g["wip"]) for g in m["decoder"]["tuning"]["grid"]}
    assert set(m["durations"]) == {"prepare_text", "lexicon", "estimate_lm", "tune", "adapt", "evaluate", "report"}


def test_artifacts_are_written(trained) -> None:
    result, _ = trained
    assert {name: path.name for name, path in result.artifacts.items()} == {
        "lm": "lm.arpa",
        "lm_bin": "lm.bin",
        "lexicon": "lexicon.dict",
        "decoder": "decoder.json",
        "metrics": "metrics.json",
        "model_card": "model_card.md",
    }
    decoder = json.loads(result.artifacts["decoder"].read_text())
    assert decoder["lw"] == result.metrics["decoder"]["lw"] and decoder["order"] == 3
    assert (decoder["lm"], decoder["lm_arpa"]) == ("lm.bin", "lm.arpa")
    assert read_arpa(result.artifacts["lm"]).ngram_counts() == result.metrics["lm"]["ngram_counts"]
    assert (
        json.loads(result.artifacts["metrics"].read_text())["evaluation"]["wer"]["custom"]["wer"]
        == (result.metrics["evaluation"]["wer"]["custom"]["wer"])
    )
    card = result.artifacts["model_card"].read_text()
    assert "| base |" in card and "| custom |" in card and "Fallback discounts" in card
    dictionary = result.artifacts["lexicon"].read_text()
    assert "\nmetoprolol " in dictionary


def test_the_model_decodes_with_the_search_options_it_was_trained_with(trained) -> None:
    result, _ = trained
    decoder = json.loads(result.artifacts["decoder"].read_text())
    assert decoder["search"] == SETTINGS.search_options == {"pl_window": 0, "topn": 8}  # the "wide" default
    assert result.metrics["decoder"]["search"] == {"name": "wide", "options": decoder["search"]}
    loaded = load_decoder(result.model_dir)
    assert (loaded.option("pl_window"), loaded.option("topn")) == (0, 8)
    assert load_decoder(None).option("topn") == 4  # the base model keeps PocketSphinx's defaults
    assert "Decoder search: wide (pl_window 0, topn 8)" in result.artifacts["model_card"].read_text()


def test_progress_is_reported_per_stage_and_never_goes_down(trained) -> None:
    _, events = trained
    percents = [p for _, p in events]
    assert percents == sorted(percents) and events[0] == ("prepare_text", 0) and events[-1] == ("report", 100)
    assert [s for s, _ in events if s in {"tune", "evaluate"}].count("tune") >= 3


def test_transcribe_with_the_trained_model(trained, spoken) -> None:
    result, _ = trained
    path, _text = spoken.test[1]  # "Continue metoprolol twenty five milligrams twice daily."
    transcript = transcribe(result.model_dir, path)
    assert "metoprolol" in transcript.text.split()
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts) and all(w.end > w.start for w in transcript.words)
    assert transcript.text == " ".join(w.word for w in transcript.words)
    assert not any(w.word.startswith(("<", "[")) for w in transcript.words)
    # a segment is decoded on its own; its word times still count from the start of the file
    met = next(w for w in transcript.words if w.word == "metoprolol")
    start, end = met.start - 0.05, met.end + 0.05
    segment = transcribe(result.model_dir, path, offset=start, duration=end - start)
    assert "metoprolol" in segment.text.split()
    assert all(start <= w.start < w.end <= end + 0.02 for w in segment.words)


def test_long_audio_is_split_at_silences(trained, spoken, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    silence = rng.integers(-3, 4, size=24_000).astype("<i2")  # 1.5 s of noise floor
    parts = [np.frombuffer(load_pcm(path), "<i2") for path, _ in spoken.test[:3]]
    joined = np.concatenate([parts[0], silence, parts[1], silence, parts[2]])
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16_000)
        out.writeframes(joined.tobytes())
    decoder = load_decoder(trained[0].model_dir)
    transcript = transcribe_with(decoder, path, max_utterance_seconds=5.0)
    words = transcript.text.split()
    assert {"patient", "metoprolol", "fibrillation"} <= set(words)
    second_starts = (parts[0].size + silence.size) / 16_000
    assert words.index("patient") < words.index("metoprolol") < words.index("fibrillation")
    assert next(w for w in transcript.words if w.word == "metoprolol").start > second_starts
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)


def test_transcribe_with_the_base_model(spoken) -> None:
    transcript = transcribe(None, spoken.test[3][0])  # "Oxygen saturation was ..."
    assert transcript.words and {"oxygen", "saturation"} & set(transcript.text.split())


def test_no_test_data_holds_out_text(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(TRAINING_TEXT * 3, encoding="utf-8")
    result = run_training(TrainingInputs(transcripts=[TextFile(notes)]), tmp_path, SETTINGS)
    m = result.metrics
    assert m["heldout"] is True and m["heldout_text"] is True and m["evaluation"]["wer"] is None
    assert m["evaluation"]["perplexity"]["custom"]["sentences"] > 0
    assert "Held out" in result.artifacts["model_card"].read_text()


def test_the_g2p_method_setting_picks_the_g2p_of_new_words(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(TRAINING_TEXT, encoding="utf-8")
    settings = dataclasses.replace(SETTINGS, g2p_method="espeak")
    result = run_training(TrainingInputs(transcripts=[TextFile(notes)]), tmp_path, settings)
    lexicon = result.metrics["lexicon"]
    assert lexicon["g2p"]["method"] == "espeak-ng table (chosen by the g2p_method setting)"
    espeak = espeak_pronunciations(["metoprolol"])["metoprolol"]
    assert lexicon["g2p_examples"]["metoprolol"] == " ".join(espeak[0])


@pytest.mark.timeout(1200)  # speaks 26 utterances, adapts and decodes: minutes on a loaded machine
def test_an_adapted_acoustic_model_ships_with_weights_tuned_for_it(spoken, tmp_path: Path) -> None:
    # lw/wip tuned with the base acoustic model cost the e2e set 0.16 -> 0.38 WER once the adapted model used them
    notes = tmp_path / "notes.txt"
    notes.write_text(TRAINING_TEXT, encoding="utf-8")
    pairs = [AudioPair(path, text) for path, text in spoken_sentences(ADAPTATION_SENTENCES[:24], tmp_path / "a", "a")]
    inputs = TrainingInputs(
        transcripts=[TextFile(notes)],
        train_pairs=pairs,
        test_pairs=[AudioPair(path, text) for path, text in spoken.test[:2]],
    )
    settings = dataclasses.replace(SETTINGS, lw_grid=(6.5, 12.0), wip_grid=(0.2, 0.65), max_tuning_decodes=24)
    result = run_training(inputs, tmp_path / "run", settings)
    m = result.metrics
    assert m["acoustic"]["method"] in {"mllr", "map", "mllr+map"}, m["acoustic"]  # else there is nothing to check
    adapted = m["decoder"]["adapted_tuning"]
    assert adapted["utterances"] == m["acoustic"]["dev_utterances"] >= 5  # the pairs held out from the adaptation
    assert len(adapted["grid"]) == 4
    shipped = json.loads(result.artifacts["decoder"].read_text())
    assert (shipped["lw"], shipped["wip"]) == (adapted["lw"], adapted["wip"])
    wer = m["evaluation"]["wer"]
    assert (wer["text_audio"]["lw"], wer["text_audio"]["wip"]) == (adapted["lw"], adapted["wip"])
    assert (wer["text_only"]["lw"], wer["text_only"]["wip"]) == (m["decoder"]["lw"], m["decoder"]["wip"])
    card = result.artifacts["model_card"].read_text()
    assert f"With the adapted acoustic model (shipped): lw {adapted['lw']}, wip {adapted['wip']}" in card


def test_only_audio_pairs_hold_out_audio_and_tune_on_the_full_lm(spoken, tmp_path: Path) -> None:
    pairs = [AudioPair(path, text) for path, text in spoken.tuning]
    result = run_training(TrainingInputs(train_pairs=pairs), tmp_path, SETTINGS)
    m = result.metrics
    assert m["heldout_audio"] is True and m["data"]["test_pairs"] == 1 and m["data"]["train_pairs"] == 2
    assert m["evaluation"]["wer"]["custom"]["utterances"] == 1
    assert m["decoder"]["tuning"]["lm"].startswith("full LM")
    assert not (tmp_path / "tuning-lm").exists()


def test_no_training_text_is_a_typed_error(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("...\n!!!\n", encoding="utf-8")
    with pytest.raises(TrainingError) as info:
        run_training(TrainingInputs(transcripts=[TextFile(notes)]), tmp_path, SETTINGS)
    assert info.value.code == "no_training_text" and "TRANSCRIPT" in info.value.message


def test_a_broken_stage_names_itself(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(TRAINING_TEXT, encoding="utf-8")
    broken = tmp_path / "call.wav"
    broken.write_bytes(b"RIFF....not really a wav")
    inputs = TrainingInputs(transcripts=[TextFile(notes)], test_pairs=[AudioPair(broken, "hold warfarin")])
    with pytest.raises(TrainingError) as info:
        run_training(inputs, tmp_path, SETTINGS)
    assert info.value.code == "stage_failed" and info.value.stage == "evaluate"
    assert "call.wav" in info.value.message


def test_an_exception_from_progress_cancels_unchanged(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(TRAINING_TEXT, encoding="utf-8")

    class Cancelled(Exception):
        pass

    def progress(stage: str, percent: float) -> None:
        if stage == "estimate_lm":
            raise Cancelled()

    with pytest.raises(Cancelled):
        run_training(TrainingInputs(transcripts=[TextFile(notes)]), tmp_path, SETTINGS, progress)


def test_an_unknown_decoder_search_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="decoder_search must be one of standard, wide"):
        TrainingSettings(decoder_search="fast")
