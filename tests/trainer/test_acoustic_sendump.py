"""The 8-bit sendump <-> float mixture_weights expansion, checked against SphinxTrain's own tools."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voxtrain_trainer.ml.acoustic.s3files import expand_sendump, read_s3_array, read_sendump, write_s3_array
from voxtrain_trainer.ml.acoustic.sphinxtrain import SphinxTools, missing_tools
from voxtrain_trainer.ml.base_model import base_model_files

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"SphinxTrain tools missing: {missing_tools()}")
PRINTP = "/usr/lib/sphinxtrain/printp"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("am")
    tools = SphinxTools(work / "logs")
    return tools, tools.prepare_base(base_model_files().hmm, work / "mixture_weights", work / "mdef.txt"), work


def test_expanded_weights_are_distributions_of_the_models_shape(base) -> None:
    _, model, _ = base
    weights = read_s3_array(model.mixture_weights, 3)
    assert weights.shape == (5126, 3, 128)  # senones x streams x codewords of the en-US PTM model
    assert np.allclose(weights.sum(axis=2), 1.0, atol=1e-4)
    assert weights.min() > 0


def test_mk_s2sendump_rebuilds_the_shipped_sendump_byte_for_byte(base) -> None:
    tools, model, work = base
    rebuilt = tools.quantise_mixture_weights(model, model.mixture_weights, work / "sendump")
    assert rebuilt.read_bytes() == (base_model_files().hmm / "sendump").read_bytes()


def test_sphinxtrains_reader_reads_the_same_weights(base) -> None:
    _, model, _ = base
    out = subprocess.run(
        [PRINTP, "-mixwfn", str(model.mixture_weights), "-mixws", "7", "-mixwe", "7", "-norm", "no", "-sigfig", "6"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "mixw 1 3 128 subinterval [7 7]" in out
    printed = [float(x) for x in re.findall(r"\d\.\d+e[-+]\d+", out.split("mixw [7 1]")[0].split("mixw [7 0]")[1])]
    ours = read_sendump(base_model_files().hmm / "sendump")[7, 0]
    assert len(printed) == 128 + 1  # the row's total, then its 128 weights
    assert np.allclose(printed[1:], ours, rtol=1e-5)


def test_a_changed_weight_survives_the_round_trip(tmp_path: Path, base) -> None:
    tools, model, _ = base
    weights = read_s3_array(model.mixture_weights, 3)
    weights[0, 0, :] = 1.0 / 128  # a flat row quantises to one value
    write_s3_array(tmp_path / "mixw", weights)
    sendump = tools.quantise_mixture_weights(model, tmp_path / "mixw", tmp_path / "sendump")
    again = expand_sendump(sendump, tmp_path / "mixw2")
    assert again == (5126, 3, 128)
    back = read_s3_array(tmp_path / "mixw2", 3)
    assert np.allclose(back[0, 0], 1.0 / 128, rtol=1e-3)
    assert np.allclose(back[1:], weights[1:], rtol=2e-3)


def test_a_truncated_sendump_is_refused(tmp_path: Path) -> None:
    blob = (base_model_files().hmm / "sendump").read_bytes()
    (tmp_path / "sendump").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_sendump(tmp_path / "sendump")
