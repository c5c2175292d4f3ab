"""Run CMU's acoustic-model tools: ``sphinx_fe``, ``bw``, ``mllr_solve``, ``mllr_transform``,
``map_adapt``, ``mk_s2sendump`` and ``pocketsphinx_mdef_convert``.

Contract: :class:`SphinxTools` finds the programs (on PATH, or in SphinxTrain's
``/usr/lib/sphinxtrain``); :func:`missing_tools` names those that are absent (Debian packages
``sphinxtrain``, ``sphinxbase-utils``, ``pocketsphinx``). Every call raises ``RuntimeError`` with
the tail of the tool's output when it fails. Feature options are read from the model's
``feat.params``: ``sphinx_fe`` gets that file itself as its argument file, and ``bw`` the
feature type, stream split, CMN, AGC and variance normalisation it names, so training features
are the ones the decoder computes.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from voxtrain_trainer.ml.acoustic.s3files import expand_sendump

SPHINXTRAIN_DIR = Path("/usr/lib/sphinxtrain")
TOOLS = {
    "sphinx_fe": "sphinxbase-utils",
    "pocketsphinx_mdef_convert": "pocketsphinx",
    "bw": "sphinxtrain",
    "mllr_solve": "sphinxtrain",
    "mllr_transform": "sphinxtrain",
    "map_adapt": "sphinxtrain",
    "mk_s2sendump": "sphinxtrain",
}
# feat.params keys that bw takes too (the front-end ones only matter to sphinx_fe)
_BW_FEATURE_KEYS = ("feat", "svspec", "cmn", "agc", "varnorm", "lda", "ldadim")
TIMEOUT_SECONDS = 3600


def _find(name: str) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    candidate = SPHINXTRAIN_DIR / name
    return candidate if candidate.exists() else None


def missing_tools() -> list[str]:
    """``tool (Debian package)`` for each program that is not installed."""
    return [f"{name} ({package})" for name, package in TOOLS.items() if _find(name) is None]


def read_feat_params(path: Path) -> dict[str, str]:
    """``-key value`` lines of a ``feat.params`` as ``{key: value}``."""
    params: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].startswith("-"):
            params[fields[0][1:]] = fields[1]
    return params


@dataclass(frozen=True)
class BaseAcousticModel:
    """The model being adapted: its directory plus the files the tools need that it does not ship."""

    hmm: Path
    mdef_text: Path
    mixture_weights: Path

    @property
    def feat_params(self) -> Path:
        return self.hmm / "feat.params"

    @property
    def ts2cb(self) -> str:
        """SphinxTrain's name for the senone-to-codebook tying of the model type (``.ptm.``, ``.semi.``, ``.cont.``)."""
        return f".{read_feat_params(self.feat_params).get('model', 'ptm')}."


class SphinxTools:
    """Thin wrappers around the programs; all paths are explicit."""

    def __init__(self, log_dir: Path) -> None:
        missing = missing_tools()
        if missing:
            raise RuntimeError("acoustic adaptation needs " + ", ".join(missing))
        self._log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, *args: str | Path) -> None:
        exe = _find(name)
        assert exe is not None  # checked in __init__
        log = self._log_dir / f"{name}.log"
        with log.open("w", encoding="utf-8", errors="replace") as out:
            try:
                done = subprocess.run(
                    [str(exe), *map(str, args)], stdout=out, stderr=subprocess.STDOUT, timeout=TIMEOUT_SECONDS
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise RuntimeError(f"{name} could not run: {exc}") from exc
        if done.returncode != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{name} failed (exit {done.returncode}): {' | '.join(tail)}")

    def prepare_base(self, hmm: Path, mixw_path: Path, mdef_text: Path) -> BaseAcousticModel:
        """Text mdef and float mixture weights of ``hmm`` (which ships only binary mdef and sendump)."""
        self.run("pocketsphinx_mdef_convert", "-text", hmm / "mdef", mdef_text)
        expand_sendump(hmm / "sendump", mixw_path)
        return BaseAcousticModel(hmm, mdef_text, mixw_path)

    def features(self, base: BaseAcousticModel, fileids: Path, audio_dir: Path, sample_rate: int) -> None:
        """MFCC files ``<id>.mfc`` beside the ``<id>.wav`` files, exactly as ``feat.params`` says."""
        self.run(
            "sphinx_fe", "-argfile", base.feat_params, "-samprate", str(sample_rate), "-c", fileids,
            "-di", audio_dir, "-do", audio_dir, "-ei", "wav", "-eo", "mfc", "-mswav", "yes",
        )  # fmt: skip

    def accumulate(self, base: BaseAcousticModel, means: Path, corpus: Path, dictionary: Path, accum_dir: Path) -> None:
        """Baum-Welch statistics of the corpus (``fileids``, ``transcription``, ``*.mfc``) under ``means``."""
        accum_dir.mkdir(parents=True, exist_ok=True)
        feat = read_feat_params(base.feat_params)
        feature_args = [a for k in _BW_FEATURE_KEYS if k in feat for a in (f"-{k}", feat[k])]
        self.run(
            "bw", "-hmmdir", base.hmm, "-moddeffn", base.mdef_text, "-ts2cbfn", base.ts2cb,
            "-meanfn", means, "-varfn", base.hmm / "variances", "-mixwfn", base.mixture_weights,
            "-tmatfn", base.hmm / "transition_matrices", *feature_args,
            "-dictfn", dictionary, "-fdictfn", base.hmm / "noisedict", "-ctlfn", corpus / "fileids",
            "-lsnfn", corpus / "transcription", "-cepdir", corpus, "-cepext", "mfc", "-accumdir", accum_dir,
        )  # fmt: skip

    def solve_mllr(self, base: BaseAcousticModel, accum_dir: Path, out: Path) -> Path:
        """One global MLLR mean transform from the statistics."""
        self.run(
            "mllr_solve", "-meanfn", base.hmm / "means", "-varfn", base.hmm / "variances",
            "-outmllrfn", out, "-accumdir", accum_dir,
        )  # fmt: skip
        return out

    def transform_means(self, base: BaseAcousticModel, mllr: Path, out: Path) -> Path:
        """The base means with an MLLR transform applied."""
        self.run("mllr_transform", "-inmeanfn", base.hmm / "means", "-outmeanfn", out, "-mllrmat", mllr)
        return out

    def map_adapt(self, base: BaseAcousticModel, means: Path, accum_dir: Path, out_dir: Path) -> dict[str, Path]:
        """MAP re-estimation of means, variances, mixture weights and transitions; PocketSphinx files."""
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {
            "mean": out_dir / "means",
            "var": out_dir / "variances",
            "mixw": out_dir / "mixture_weights",
            "tmat": out_dir / "transition_matrices",
            "sendump": out_dir / "sendump",
        }
        self.run(
            "map_adapt", "-moddeffn", base.mdef_text, "-ts2cbfn", base.ts2cb,
            "-meanfn", means, "-varfn", base.hmm / "variances", "-mixwfn", base.mixture_weights,
            "-tmatfn", base.hmm / "transition_matrices", "-accumdir", accum_dir,
            "-mapmeanfn", files["mean"], "-mapvarfn", files["var"], "-mapmixwfn", files["mixw"],
            "-maptmatfn", files["tmat"],
        )  # fmt: skip
        self.quantise_mixture_weights(base, files["mixw"], files["sendump"])
        return files

    def quantise_mixture_weights(self, base: BaseAcousticModel, mixture_weights: Path, sendump: Path) -> Path:
        """PocketSphinx's 8-bit ``sendump`` of float mixture weights (no extra flooring)."""
        self.run(
            "mk_s2sendump", "-pocketsphinx", "yes", "-mwfloor", "1e-30", "-moddeffn", base.mdef_text,
            "-mixwfn", mixture_weights, "-sendumpfn", sendump,
        )  # fmt: skip
        return sendump
