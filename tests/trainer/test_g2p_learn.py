"""G2P trained from the base dictionary (Phonetisaurus): alignment, decoding, held-out error rates, cache."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.g2p import G2PUnavailable, espeak_pronunciations
from voxtrain_trainer.ml.g2p_learn import (
    Dictionary,
    Pron,
    TrainedG2P,
    align,
    error_rates,
    heldout_split,
    learned_g2p,
    letters_of,
    nbest,
    read_alignment,
    train_phonetisaurus,
    trained_g2p,
)
from voxtrain_trainer.ml.lexicon import load_base_dictionary
from voxtrain_trainer.ml.types import TrainingSettings

# Consonant-vowel-consonant words, where each letter (and "ph") is one phone, with the vowels seen
# at word edges too so that EM cannot pair a consonant with the vowel.
TINY = """cat K AE T
bat B AE T
tab T AE B
cab K AE B
bad B AE D
dab D AE B
tad T AE D
sat S AE T
pat P AE T
tap T AE P
cap K AE P
sap S AE P
sad S AE D
pad P AE D
dad D AE D
tat T AE T
sip S IH P
tip T IH P
dip D IH P
bit B IH T
kit K IH T
pit P IH T
sit S IH T
bid B IH D
kid K IH D
did D IH D
phase F EY Z
phat F AE T
phi F AY
at AE T
it IH T
ad AE D
id IH D
ab AE B
ap AE P
ip IH P
ib IH B
as AE S
is IH S
phit F IH T
phip F IH P
phid F IH D
phis F IH S
taps T AE P S
bids B IH D Z
cats K AE T S
kits K IH T S"""


def tiny() -> dict[str, list[Pron]]:
    return {w: [tuple(p)] for w, *p in (line.split() for line in TINY.splitlines())}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tmp_path_factory.mktemp("tiny") / "model.fst"
    train_phonetisaurus(tiny(), model, order=2)
    return model


def test_alignment_pairs_letters_with_the_phones_they_spell(tmp_path: Path) -> None:
    aligned = {"".join(c for c, _ in chunks): chunks for chunks in read_alignment(align(tiny(), tmp_path))}
    assert len(aligned) == len(tiny())
    assert aligned["cat"] == [("c", ("K",)), ("a", ("AE",)), ("t", ("T",))]
    assert aligned["phit"] == [("ph", ("F",)), ("i", ("IH",)), ("t", ("T",))]
    assert aligned["bids"] == [("b", ("B",)), ("i", ("IH",)), ("d", ("D",)), ("s", ("Z",))]


def test_decoding_spells_unseen_words_from_the_learned_chunks(tiny_model: Path) -> None:
    best = {w: scored[0][1] for w, scored in nbest(tiny_model, ["cad", "tid", "phap", "pib", "dit"], 1).items()}
    assert best == {
        "cad": ("K", "AE", "D"),
        "tid": ("T", "IH", "D"),
        "phap": ("F", "AE", "P"),
        "pib": ("P", "IH", "B"),
        "dit": ("D", "IH", "T"),
    }


def test_a_close_second_pronunciation_becomes_a_variant(tiny_model: Path) -> None:
    scored = nbest(tiny_model, ["phap"], 2)["phap"]
    assert len(scored) == 2 and scored[0][0] <= scored[1][0]  # negative log probabilities, best first
    ratio = math.exp(scored[0][0] - scored[1][0])  # P(second) / P(best)

    def g2p(variant_ratio: float) -> TrainedG2P:
        return TrainedG2P(tiny_model, {}, letters_of(tiny()), variant_ratio=variant_ratio)

    assert g2p(0.0).pronounce(["phap"]) == {"phap": [("F", "AE", "P")]}
    assert g2p(ratio / 2).pronounce(["phap"]) == {"phap": [("F", "AE", "P"), scored[1][1]]}
    assert g2p(ratio * 2).pronounce(["phap"]) == {"phap": [("F", "AE", "P")]}


def test_words_the_model_cannot_spell_fall_back_to_espeak(tiny_model: Path) -> None:
    prons = TrainedG2P(tiny_model, {}, letters_of(tiny())).pronounce(["cad", "zowie"])
    assert prons["cad"] == [("K", "AE", "D")]
    assert prons["zowie"] == espeak_pronunciations(["zowie"])["zowie"]


def test_error_rates_count_edits_against_the_closest_reference() -> None:
    refs: Dictionary = {"city": [("S", "IH", "T", "IY"), ("S", "IH", "D", "IY")], "about": [("AH", "B", "AW", "T")]}
    exact = error_rates({"city": [("S", "IH", "D", "IY")], "about": [("AH", "B", "AW", "T")]}, refs)
    assert exact.phone_error_rate == 0 and exact.word_error_rate == 0
    rates = error_rates({"city": [("S", "IH", "D", "IH")], "about": [("B", "AW", "T")]}, refs)
    assert rates.phone_error_rate == 2 / 8 and rates.word_error_rate == 1.0 and rates.words == 2
    missing = error_rates({"city": [("S", "IH", "T", "IY")]}, refs)  # no pronunciation: every phone wrong
    assert missing.phone_error_rate == 4 / 8 and missing.word_error_rate == 0.5


def test_the_heldout_split_is_seeded_and_disjoint() -> None:
    base = tiny() | {"don't": [("D", "OW", "N", "T")]}
    train, held = heldout_split(base, 10, seed=1)
    assert len(held) == 10 and not set(train) & set(held) and set(train) | set(held) == set(base)
    assert "don't" in train  # only alphabetic words are held out
    assert heldout_split(base, 10, seed=1) == (train, held)
    assert heldout_split(base, 10, seed=2)[1] != held


def test_a_model_is_trained_once_per_dictionary_and_measured_on_words_it_never_saw(tmp_path: Path) -> None:
    dictionary = tmp_path / "tiny.dict"
    dictionary.write_text(TINY + "\n", encoding="utf-8")
    trained: list[set[str]] = []

    def train(entries: Dictionary, model: Path, order: int) -> None:
        trained.append(set(entries))
        train_phonetisaurus(entries, model, order)

    cache = tmp_path / "cache"
    first = trained_g2p(dictionary, cache, order=2, heldout=8, train=train)
    again = trained_g2p(dictionary, cache, order=2, heldout=8, train=train)
    assert len(trained) == 1 and again.report == first.report and again.model == first.model
    assert first.model.parent.stat().st_mode & 0o777 == 0o755  # workers running as another user read it too
    report = first.report
    assert report["heldout_words"] == 8 and report["train_words"] == len(tiny()) - 8
    assert not trained[0] & set(heldout_split(tiny(), 8)[1])
    assert 0 <= report["phone_error_rate"] <= 1 and 0 <= report["phone_error_rate_espeak"] <= 1
    assert report["method"] == "phonetisaurus joint-sequence 2-gram"

    dictionary.write_text(TINY + "\nbib B IH B\n", encoding="utf-8")  # another dictionary: another model
    trained_g2p(dictionary, cache, order=2, heldout=8, train=train)
    assert len(trained) == 2


def test_the_learned_g2p_beats_the_espeak_table_on_held_out_cmudict_words() -> None:
    dictionary = base_model_files().dictionary
    g2p = learned_g2p(dictionary)  # trained once per dictionary, then cached on disk
    _, held = heldout_split(load_base_dictionary(dictionary))
    sample = dict(list(held.items())[:300])
    learned = error_rates(g2p.pronounce(sample), sample)
    espeak = error_rates(espeak_pronunciations(sample), sample)
    assert learned.phone_error_rate < 0.08 < espeak.phone_error_rate, (learned, espeak)
    assert g2p.report["heldout_words"] == 2000 and g2p.report["phone_error_rate"] < 0.08
    assert g2p.pronounce(["borescope"])["borescope"][0] != ("B", "ER", "R", "EH", "S", "OW", "P")


def test_without_a_trainable_model_the_espeak_table_is_used_and_reported(tmp_path: Path) -> None:
    dictionary = tmp_path / "tiny.dict"
    dictionary.write_text(TINY + "\n", encoding="utf-8")

    def unavailable(entries: Dictionary, model: Path, order: int) -> None:
        raise G2PUnavailable("phonetisaurus-align failed: test")

    g2p = trained_g2p(dictionary, tmp_path / "cache", heldout=8, train=unavailable)
    assert g2p.report["method"].startswith("espeak-ng table (no trained model: phonetisaurus-align failed")
    assert g2p.report["heldout_words"] == 8 and g2p.report["phone_error_rate"] == g2p.report["phone_error_rate_espeak"]
    assert g2p.pronounce(["cad"]) == espeak_pronunciations(["cad"])
    assert not list((tmp_path / "cache").glob("*/report.json"))  # not cached: the next run tries again


def test_the_espeak_method_reproduces_the_g2p_before_the_learned_model(tmp_path: Path) -> None:
    dictionary = tmp_path / "tiny.dict"
    dictionary.write_text(TINY + "\n", encoding="utf-8")
    g2p = learned_g2p(dictionary, cache_dir=tmp_path / "cache", method="espeak")
    assert g2p.report["method"] == "espeak-ng table (chosen by the g2p_method setting)"
    assert g2p.pronounce(["borescope", "cad"]) == espeak_pronunciations(["borescope", "cad"])
    assert not (tmp_path / "cache").exists()  # nothing trained


def test_the_g2p_method_setting_names_a_known_method() -> None:
    assert TrainingSettings(g2p_method="espeak").g2p_method == "espeak"
    with pytest.raises(ValueError, match="g2p_method"):
        TrainingSettings(g2p_method="sequitur")
