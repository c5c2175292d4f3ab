"""The ARPA writer: header counts, round trip, and PocketSphinx reading it the same way."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pocketsphinx
import pytest

from tests.trainer.medical_domain import TRAINING_TEXT
from voxtrain_trainer.ml.arpa import read_arpa, write_arpa
from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.decoder import DecoderConfig, SpeechDecoder
from voxtrain_trainer.ml.encoding import encode_sentences
from voxtrain_trainer.ml.kneser_ney import estimate_kneser_ney
from voxtrain_trainer.ml.lexicon import build_lexicon, load_base_dictionary, write_dictionary
from voxtrain_trainer.ml.lm_binary import convert_to_binary

SENTENCES = [line.lower().rstrip(".") for line in TRAINING_TEXT.splitlines()]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    encoded = encode_sentences(SENTENCES)
    lm, _ = estimate_kneser_ney(encoded, 3)
    path = tmp_path_factory.mktemp("arpa") / "lm.arpa"
    counts = write_arpa(lm, path)
    return lm, path, counts, encoded


def test_header_counts_match_sections(model) -> None:
    lm, path, counts, _ = model
    text = path.read_text(encoding="utf-8")
    header = [int(m) for m in re.findall(r"^ngram \d+=(\d+)$", text, flags=re.M)]
    sections = re.split(r"^\\\d-grams:$", text, flags=re.M)[1:]
    lines = [len([ln for ln in s.split("\\end\\")[0].splitlines() if ln.strip()]) for s in sections]
    assert header == counts == lines == lm.ngram_counts()
    assert text.startswith("\\data\\\n") and text.rstrip().endswith("\\end\\")
    for special in ("<s>", "</s>", "<unk>"):
        assert re.search(rf"^-?\d+\.\d+\t{re.escape(special)}(\t|$)", text, flags=re.M)
    assert re.search(r"^-99\.000000\t<s>\t", text, flags=re.M)


def test_round_trip_keeps_probabilities(model) -> None:
    lm, path, _, encoded = model
    again = read_arpa(path)
    assert again.vocab == lm.vocab and again.ngram_counts() == lm.ngram_counts()
    np.testing.assert_allclose(again.score_tokens(encoded.tokens), lm.score_tokens(encoded.tokens), atol=2e-6)


def test_pocketsphinx_reads_the_same_probabilities(model) -> None:
    lm, path, _, _ = model
    ps_lm = pocketsphinx.NGramModel.readfile(str(path))
    to_log10 = math.log10(1.0001)
    for words in (
        ["metoprolol", "on", "started"],
        ["pressure", "blood"],
        ["tachycardia", "persistent", "for"],
        ["<unk>"],
        ["</s>", "daily"],
    ):
        ids = [lm.word_index[w] for w in words]
        ours = lm.log10_prob(ids[1:][::-1], ids[0])  # PocketSphinx: word first, then history newest first
        assert ps_lm.prob(words) * to_log10 == pytest.approx(ours, abs=1e-3)


def test_binary_conversion_keeps_probabilities(model, tmp_path: Path) -> None:
    _, path, _, _ = model
    binary = convert_to_binary(path, tmp_path / "lm.bin")
    from_arpa = pocketsphinx.NGramModel.readfile(str(path))
    from_bin = pocketsphinx.NGramModel.readfile(str(binary))
    for words in (["metoprolol", "on", "started"], ["pressure", "blood"], ["</s>", "daily"], ["zzz"]):
        assert from_bin.prob(words) == from_arpa.prob(words)


def test_decoder_loads_lm_with_lexicon(model, tmp_path: Path) -> None:
    lm, path, _, _ = model
    lexicon = build_lexicon(lm.vocab[3:], load_base_dictionary(base_model_files().dictionary))
    write_dictionary(lexicon.entries, tmp_path / "lexicon.dict")
    decoder = SpeechDecoder(DecoderConfig(path, tmp_path / "lexicon.dict", base_model_files().hmm, 7.0, 0.5))
    assert decoder.lw == 7.0 and decoder.wip == 0.5
    assert decoder.decode(b"\x00\x00" * 1600).text == ""


def test_reader_rejects_inconsistent_header(tmp_path: Path) -> None:
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\n-1.0\t</s>\n\n\\end\\\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header says 3"):
        read_arpa(bad)
