"""The lexicon: base pronunciations, espeak-ng G2P for new words (batched), unmapped words."""

from __future__ import annotations

from pathlib import Path

from voxtrain_trainer.ml import g2p
from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.lexicon import build_lexicon, load_base_dictionary, read_dictionary, write_dictionary


def _base():
    return load_base_dictionary(base_model_files().dictionary)


def test_made_up_domain_word_gets_a_plausible_cmu_pronunciation() -> None:
    # "zorvastatin": a made-up drug name, certainly not in CMUdict.
    lexicon = build_lexicon(["zorvastatin", "heart"], _base())
    assert lexicon.from_g2p == ["zorvastatin"] and lexicon.from_base == ["heart"]
    phones = lexicon.entries["zorvastatin"][0]
    assert set(phones) <= g2p.CMU_PHONES
    assert phones[0] == "Z" and phones[-2:] == ("IH", "N")
    assert "S" in phones and "T" in phones and "V" in phones
    assert lexicon.entries["heart"] == [("HH", "AA", "R", "T")]


def test_g2p_roughly_agrees_with_cmudict_on_known_words() -> None:
    base = _base()
    words = ["hospital", "medicine", "pressure", "morning", "patient", "kitchen", "thousand", "yellow"]
    generated = g2p.espeak_pronunciations(words)
    exact = sum(any(p in base[w] for p in generated[w]) for w in words)
    assert exact >= 5, {w: generated[w] for w in words}


def test_flap_gives_t_and_d_variants() -> None:
    assert g2p.ipa_to_cmu("b_ˈʌ_ɾ_ɚ") == [("B", "AH", "T", "ER"), ("B", "AH", "D", "ER")]


def test_unknown_sound_is_reported_not_guessed() -> None:
    assert g2p.ipa_to_cmu("ʀ_ø") is None
    lexicon = build_lexicon(["qqq"], {}, g2p=lambda words: {})
    assert lexicon.unmapped == ["qqq"] and "qqq" not in lexicon.entries


def test_espeak_runs_once_for_many_words(monkeypatch) -> None:
    calls = []
    real = g2p._espeak_batch

    def counting(words, voice):
        calls.append(len(words))
        return real(words, voice)

    monkeypatch.setattr(g2p, "_espeak_batch", counting)
    words = [f"zorb{chr(97 + i)}ex" for i in range(26)] + ["ketorolac", "apixaban", "dabigatran"]
    result = g2p.espeak_pronunciations(words)
    assert calls == [len(words)]
    assert set(result) == set(words)


def test_dictionary_round_trip(tmp_path: Path) -> None:
    entries = {"tomato": [("T", "AH", "M", "EY", "T", "OW"), ("T", "AH", "M", "AA", "T", "OW")], "a": [("AH",)]}
    path = tmp_path / "x.dict"
    assert write_dictionary(entries, path) == 3
    assert path.read_text().splitlines() == ["a AH", "tomato T AH M EY T OW", "tomato(2) T AH M AA T OW"]
    assert read_dictionary(path) == entries
