"""Out-of-core interpolated modified Kneser-Ney estimation, in bounded memory, to an ARPA file.

Contract of :func:`estimate_arpa`: reads normalised sentences (a text file of one sentence per
line, words separated by spaces, or an iterable of token lists, which is streamed to a file
first: the corpus is never held in memory) and writes the same model as
:func:`voxtrain_trainer.ml.kneser_ney.estimate_kneser_ney` would (same probabilities and backoff
weights to 1e-6, same discounts and small-corpus fallback) in the ARPA format of
:mod:`voxtrain_trainer.ml.arpa`, optionally after a vocabulary cap and count pruning. The process
stays within ``memory_mb`` (counting, sorting and joins spill to ``work_dir``; the peak RSS at
each corpus size is measured by the benchmark), and ``progress``
gets a fraction in ``[0, 1]`` that never goes down and ends at 1. An exception raised by
``progress`` stops the estimation and propagates unchanged.

Engine: DuckDB (``memory_limit`` + ``temp_directory``), chosen over a hand-written numpy
sort/spill/merge after measuring both on the same 10M-word corpus (order 3, 2 shared cores):
tokenising, mapping words to ids and counting trigrams took 2.6 s in DuckDB against 5.6 s with
numpy (4.2 s of it in the Python tokeniser, which DuckDB's parallel CSV reader and hash join
replace), and DuckDB's sorts, aggregates and joins already spill to disk under a memory limit,
which the continuation counts and interpolation joins need as much as the counting does. For
the record, KenLM's lmplz took 11.9 s for the whole estimation of that corpus, and ours 15.9 s
(bench/trainer/bench_lm.py measures both side by side). Tried and dropped: the words as a DuckDB
ENUM (printing the ARPA without joins to the vocabulary) cost ~15% more CPU in total.

How (order ``N``; see :mod:`kneser_ney` for the formulas):

1. one scan of the text: word counts (vocabulary, cap) and, in a second scan, the number and
   longest length of the sentences; nothing per sentence is stored. Then a third scan maps each
   sentence's words to ids by casting them to an ENUM of the vocabulary (no join), pads the list
   with ``<s>`` and "none" markers, and cuts it into ``N``-grams by list indexing, each packed into
   one integer key (``bits = vocab_size.bit_length()`` per word: BIGINT while ``N * bits <= 63``,
   else HUGEINT). The keys are stored (8 bytes an n-gram; see below), grouped and unpacked:
   full ``N``-grams give raw top-order counts, those with "none" (which can only start with
   ``<s>``) the raw counts of the ``<s>``-initial lower orders;
2. adjusted counts of order ``n < N``: the number of distinct ``(n+1)``-grams with that suffix,
   plus the raw counts of the ``<s>``-initial ``n``-grams (nothing precedes ``<s>``);
3. discounts from each order's count-of-counts (fallback as in :mod:`kneser_ney`), then the
   interpolated probabilities bottom-up, each order joined with its contexts and the order below;
4. pruning (optional): an ``n``-gram (``n >= 2``) whose adjusted count is at most the threshold
   of its order is dropped unless it is the prefix or suffix of a kept longer one (so every
   kept entry's history and backoff path are listed, as PocketSphinx needs); the backoff
   weight of a context that lost entries is renormalised,
   ``bow(h) = (1 - sum_kept p(w|h)) / (1 - sum_kept p(w|h'))``, so distributions still sum to one;
5. the ARPA sections are written by the engine and concatenated under the header.

Spill disk: the temporary tables and the engine's spills go to ``work_dir``, and at most
``spill_limit_mb`` of them (DuckDB's ``max_temp_directory_size``): beyond that the estimation stops
with ``TrainingError`` ``lm_spill_limit_exceeded`` and a message naming the settings to change,
instead of filling the disk. Before this layout (a materialised table of every sentence's words as
strings, a window over every token to find its predecessors, and one three-way join per order for
the interpolation) the spill passed 45 GB at 100M words with a 2 GB budget and was still growing;
measured with the new counting, the counts spilled ~4 GB and the runaway was the three-way join
(over 40 GB while its progress stood still), now two joins of two tables each. The keys are
materialised before grouping because DuckDB 2.0's hash aggregate fed directly by ``unnest``
grew past the memory limit instead of spilling (out of memory at 100M words with 1 GB, and at 4M
words with 64 MB); stored first, the same aggregate spills as it should. The measured spill and
time per corpus size are in bench/trainer/LM_RESULTS.md.

Vocabulary cap: the ``max_vocabulary`` most frequent words (ties by spelling) are kept, every
other word becomes ``<unk>`` before counting. :func:`auto_limits` gives defaults by corpus size.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from voxtrain_trainer.ml.backoff_lm import BackoffLM, LevelTable
from voxtrain_trainer.ml.encoding import BOS, BOS_ID, EOS, EOS_ID, UNK, EncodedText
from voxtrain_trainer.ml.errors import TrainingError
from voxtrain_trainer.ml.kneser_ney import DEFAULT_FALLBACK, Discounts, discounts_from_count_of_counts

FractionCallback = Callable[[float], None]

DEFAULT_MEMORY_MB = 2048
DEFAULT_SPILL_LIMIT_MB = 32768
# The engine's memory_limit covers its buffer pool, not the interpreter, numpy, the engine's code or
# what its allocator keeps: the process peaked ~170 MB over the limit (budget 1 GB, 10M words) and
# ~450 MB over it (2 GB, 100M words). So the engine gets 60% of the budget less 64 MB, and its
# allocator hands freed memory back early.
_ENGINE_FRACTION = 0.6
_ENGINE_OFFSET_MB = 64
_MIN_ENGINE_MB = 64
_POLL_SECONDS = 0.2
_LOG10_ZERO = -99.0

# (progress share of each phase; they sum to 1)
_PHASES = {"read": 0.12, "count": 0.33, "adjust": 0.12, "estimate": 0.2, "prune": 0.06, "write": 0.17}


@dataclass(frozen=True)
class PruningReport:
    """What the vocabulary cap and count pruning removed (for the run's metrics)."""

    max_vocabulary: int | None
    thresholds: tuple[int, ...]
    vocabulary_before: int
    vocabulary_after: int
    tokens_mapped_to_unk: int
    ngrams_before: tuple[int, ...]
    ngrams_after: tuple[int, ...]

    @property
    def pruned(self) -> bool:
        """Whether anything was removed."""
        return self.vocabulary_after < self.vocabulary_before or self.ngrams_after != self.ngrams_before

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {**asdict(self), "pruned": self.pruned}


@dataclass(frozen=True)
class ExternalLMResult:
    """The ARPA file written and what was measured on the way."""

    arpa_path: Path
    order: int
    ngram_counts: list[int]
    vocabulary: list[str]
    discounts: list[Discounts]
    pruning: PruningReport
    words: int
    sentences: int
    model: BackoffLM | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # engine time per phase

    @property
    def vocab_size(self) -> int:
        """Words in the model, specials included."""
        return len(self.vocabulary)


def auto_limits(words: int, order: int) -> tuple[int | None, tuple[int, ...]]:
    """Default vocabulary cap and pruning thresholds (one per order) for a corpus of ``words``.

    Below 20M words nothing is pruned (the model stays as small as PocketSphinx handles
    comfortably: a few million n-grams). Above, singletons of the orders >= 3 go, then (from
    200M words) also bigram singletons and trigram doubletons, and the vocabulary is capped at
    250k words, which keeps a billion-word corpus at a model of some tens of millions of
    n-grams that loads in seconds and decodes in real time.
    """
    if words < 20_000_000:
        return None, (0,) * order
    if words < 200_000_000:
        return 250_000, tuple(0 if n < 3 else 1 for n in range(1, order + 1))
    return 250_000, tuple(0 if n == 1 else 1 if n == 2 else 2 for n in range(1, order + 1))


class _Progress:
    """Monotone fraction over the phases; the current phase's share follows the engine's own progress."""

    def __init__(self, callback: FractionCallback | None) -> None:
        self._callback = callback
        self._done = 0.0
        self._reported = -1.0

    def report(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if self._callback is not None and fraction > self._reported:
            self._reported = fraction
            self._callback(fraction)

    def within(self, share: float, part: float) -> None:
        self.report(self._done + share * min(max(part, 0.0), 1.0))

    def advance(self, share: float) -> None:
        self._done += share
        self.report(self._done)


class _Engine:
    """One DuckDB connection with a memory limit, a spill directory and progress polling."""

    def __init__(
        self, spill_dir: Path, memory_mb: int, spill_limit_mb: int, threads: int | None, progress: _Progress
    ) -> None:
        engine_mb = max(int(memory_mb * _ENGINE_FRACTION) - _ENGINE_OFFSET_MB, _MIN_ENGINE_MB)
        self.engine_mb = engine_mb
        self.spill_limit_mb = spill_limit_mb
        self.con = duckdb.connect(
            config={
                "memory_limit": f"{engine_mb}MB",
                "temp_directory": str(spill_dir),
                "max_temp_directory_size": f"{spill_limit_mb}MB",
            }
        )
        self.con.execute(
            "SET preserve_insertion_order = false; SET allocator_flush_threshold = '32MB';"
            " SET enable_progress_bar = true;"
            " SET enable_progress_bar_print = false"
        )
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self._progress = progress
        self.phase = "read"
        self.seconds: dict[str, float] = {}

    def run(self, sql: str, share: float = 0.0, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        """Execute ``sql`` in a worker thread while this one reports the engine's progress."""
        outcome: dict[str, object] = {}

        def work() -> None:
            try:
                outcome["rows"] = self.con.execute(sql, params).fetchall()
            except BaseException as exc:  # handed to the calling thread below
                outcome["error"] = exc

        worker = threading.Thread(target=work, daemon=True)
        began = time.perf_counter()
        worker.start()
        try:
            while worker.is_alive():
                worker.join(_POLL_SECONDS)
                if share and worker.is_alive():
                    percent = self.con.query_progress()
                    if percent >= 0:
                        self._progress.within(share, percent / 100.0)
        except BaseException:
            self.con.interrupt()
            worker.join()
            raise
        self.seconds[self.phase] = round(self.seconds.get(self.phase, 0.0) + time.perf_counter() - began, 3)
        error = outcome.get("error")
        if isinstance(error, duckdb.OutOfMemoryException) and "max_temp_directory_size" in str(error):
            raise TrainingError(
                TrainingError.LM_SPILL_LIMIT_EXCEEDED,
                f"estimating the language model needed more than the {self.spill_limit_mb} MB of disk it may"
                f" spill to ({self.phase} step): raise VOXTRAIN_LM_SPILL_LIMIT_MB (and the disk under the work"
                " directory), raise VOXTRAIN_LM_MEMORY_MB, or cap the vocabulary / prune (VOXTRAIN_LM_MAX_VOCABULARY,"
                " VOXTRAIN_LM_PRUNE_THRESHOLDS)",
                stage="estimate_lm",
            ) from error
        if isinstance(error, BaseException):
            raise error
        self._progress.advance(share)
        return outcome["rows"]  # type: ignore[return-value]  # fetchall() result

    def count(self, sql: str) -> int:
        """The single integer ``sql`` selects."""
        return int(self.run(sql)[0][0])

    def close(self) -> None:
        self.con.close()


def _cols(prefix: str, first: int, last: int) -> str:
    return ", ".join(f"{prefix}{i}" for i in range(first, last + 1))


def _renamed(first: int, last: int, to_first: int = 1) -> str:
    return ", ".join(f"w{i} AS w{to_first + i - first}" for i in range(first, last + 1))


def _on(left: str, right: str, pairs: Iterable[tuple[int, int]]) -> str:
    return " AND ".join(f"{left}.w{a} = {right}.w{b}" for a, b in pairs) or "TRUE"


def _discount_case(d: Discounts, count: str = "c") -> str:
    return (
        f"(CASE WHEN {count} >= 3 THEN {d.d3_plus!r} WHEN {count} = 2 THEN {d.d2!r}"
        f" WHEN {count} = 1 THEN {d.d1!r} ELSE 0.0 END)"
    )


def _sql_string(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class _Packing:
    """An n-gram as one integer: ``bits`` per word (id, or all ones for "none"), first word highest."""

    def __init__(self, vocab_size: int, order: int) -> None:
        self.bits = vocab_size.bit_length()  # ids are < vocab_size < 2**bits - 1 = none
        self.none = (1 << self.bits) - 1
        self.order = order
        if self.bits * order <= 63:
            self.type = "BIGINT"
        elif self.bits * order <= 127:
            self.type = "HUGEINT"
        else:
            raise ValueError(f"a vocabulary of {vocab_size} words is too large for order {order}: cap it")

    def shift(self, k: int) -> int:
        """Bit offset of the ``k``-th word (1-based)."""
        return self.bits * (self.order - k)

    def packed(self, ids: str, at: str) -> str:
        """SQL packing the ``order`` ids of list ``ids`` from index ``at`` on into one key."""
        return " | ".join(f"({ids}[{at} + {k - 1}] << {self.shift(k)})" for k in range(1, self.order + 1))

    def columns(self) -> str:
        """SQL unpacking column ``k`` into ``w1..wN`` (INTEGER; NULL for "none")."""
        return ", ".join(
            f"nullif((k >> {self.shift(i)}) & {self.none}, {self.none})::INTEGER AS w{i}"
            for i in range(1, self.order + 1)
        )


_MAX_LINE = 64 * 2**20  # bytes of one sentence
_TOKENS = "list_filter(string_split(line, ' '), lambda x: x <> '')"  # of a line of _lines()


def _lines(path: Path, engine_mb: int) -> str:
    """SQL reading the text file ``path`` as one column ``line``, in buffers of at most an eighth of the engine's
    ``engine_mb`` (a line may be half a buffer, up to 64 MiB).

    DuckDB's default buffer (16 x max_line_size) is one block the size of the whole file up to that size, which an
    engine limit under the file's size cannot allocate (a 900 MB training text failed "could not allocate block
    of size 857.9 MiB" under an 817 MiB limit) and which otherwise takes most of the limit."""
    line = min(_MAX_LINE, engine_mb * 2**20 // 16)
    return (
        f"read_csv({_sql_string(path)}, columns = {{'line': 'VARCHAR'}}, header = false, delim = '\\x1f',"
        f" quote = '', escape = '', auto_detect = false, max_line_size = {line}, buffer_size = {2 * line})"
    )


def write_sentences(sentences: Iterable[Sequence[str]], path: Path) -> None:
    """Stream token lists to ``path``, one space-separated sentence per line (empty ones skipped)."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for tokens in sentences:
            if tokens:
                out.write(" ".join(tokens))
                out.write("\n")


def encoded_sentences(encoded: EncodedText) -> Iterator[list[str]]:
    """The sentences of an integer-encoded text as token lists (markers left out), one at a time."""
    words = np.array(encoded.vocab, dtype=object)
    starts = np.flatnonzero(encoded.tokens == BOS_ID)
    ends = np.flatnonzero(encoded.tokens == EOS_ID)
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        yield words[encoded.tokens[start + 1 : end]].tolist()


def estimate_arpa(
    corpus: Path | Iterable[Sequence[str]],
    arpa_path: Path,
    order: int = 3,
    *,
    memory_mb: int = DEFAULT_MEMORY_MB,
    spill_limit_mb: int = DEFAULT_SPILL_LIMIT_MB,
    work_dir: Path | None = None,
    max_vocabulary: int | None = None,
    prune_thresholds: Sequence[int] | None = None,
    automatic_limits: bool = False,
    keep_model: bool = False,
    scoring_sentences: Sequence[str] | None = None,
    max_ngrams: int | None = None,
    fallback: tuple[float, float, float] = DEFAULT_FALLBACK,
    threads: int | None = None,
    progress: FractionCallback | None = None,
) -> ExternalLMResult:
    """Estimate an order-``order`` model of ``corpus`` into ``arpa_path`` (see module contract).

    ``max_vocabulary`` (words, specials not counted) and ``prune_thresholds`` (one count per
    order; 0: keep all; unigrams are never pruned) default to none, or with ``automatic_limits``
    to :func:`auto_limits` of the corpus's word count. ``max_ngrams`` caps the model's n-grams (all orders):
    when there are more, the thresholds of the orders >= 2 are raised (higher orders first) until the kept
    n-grams fit, and the pruning report says which were used. ``keep_model`` also returns the whole model as
    a :class:`BackoffLM` (in memory: it grows with the model); ``scoring_sentences`` instead returns the part
    of it that scoring those normalised sentences can read — every unigram and the listed n-grams that occur
    in them — which scores them exactly as the whole model would, in memory that grows with the sentences,
    not with the model (``ngram_counts()`` of that model are not the model's: use the result's). Raises
    ``ValueError`` for an empty corpus or bad settings, and ``TrainingError`` ``lm_spill_limit_exceeded`` when more than
    ``spill_limit_mb`` of disk would be needed.
    """
    if not 1 <= order <= 6:
        raise ValueError("order must be between 1 and 6")
    if memory_mb < _MIN_ENGINE_MB:
        raise ValueError(f"memory_mb must be at least {_MIN_ENGINE_MB}")
    if spill_limit_mb < 1:
        raise ValueError("spill_limit_mb must be positive")
    if max_vocabulary is not None and max_vocabulary < 1:
        raise ValueError("max_vocabulary must be positive")
    if max_ngrams is not None and max_ngrams < 1:
        raise ValueError("max_ngrams must be positive")
    thresholds = tuple(prune_thresholds) if prune_thresholds is not None else None
    if thresholds is not None and (len(thresholds) != order or any(t < 0 for t in thresholds)):
        raise ValueError(f"prune_thresholds needs {order} non-negative counts, one per order")
    tracker = _Progress(progress)
    tracker.report(0.0)
    scratch = Path(tempfile.mkdtemp(prefix="lm-external-", dir=work_dir))
    try:
        if isinstance(corpus, (str, Path)):
            text_path = Path(corpus)
        else:
            text_path = scratch / "sentences.txt"
            write_sentences(corpus, text_path)
        scoring = None
        if scoring_sentences is not None:
            scoring = scratch / "scoring.txt"
            write_sentences((s.split() for s in scoring_sentences), scoring)
        (scratch / "spill").mkdir()
        engine = _Engine(scratch / "spill", memory_mb, spill_limit_mb, threads, tracker)
        try:
            return _estimate(
                engine,
                text_path,
                arpa_path,
                order,
                (max_vocabulary, thresholds, automatic_limits, max_ngrams),
                fallback,
                scratch,
                keep_model or scoring,
            )
        finally:
            engine.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        tracker.report(1.0)


def _estimate(
    engine: _Engine,
    text_path: Path,
    arpa_path: Path,
    requested_order: int,
    limits: tuple[int | None, tuple[int, ...] | None, bool, int | None],
    fallback: tuple[float, float, float],
    scratch: Path,
    keep_model: bool | Path | None,
) -> ExternalLMResult:
    """The estimation on an open engine; ``keep_model``: True (whole model), a file of sentences (the part
    that scores them) or falsy (none)."""
    run = engine.run
    share = _PHASES
    # 1. word counts -> vocabulary (ids 0, 1, 2 are <s>, </s>, <unk>); nothing per sentence is kept
    source = _lines(text_path, engine.engine_mb)
    tokens = _TOKENS
    run(
        f"CREATE TEMP TABLE wc AS SELECT w, count(*) AS c FROM (SELECT unnest({tokens}) AS w FROM {source}) GROUP BY w",
        share["read"] * 0.6,
    )
    sentences, longest = engine.run(
        f"SELECT count(*), max(n) FROM (SELECT len({tokens}) AS n FROM {source}) WHERE n > 0", share["read"] * 0.4
    )[0]
    if not sentences:
        raise ValueError("cannot estimate a language model from no sentences")
    words = engine.count("SELECT sum(c) FROM wc")
    specials = f"('{BOS}', '{EOS}', '{UNK}')"
    types_before = engine.count(f"SELECT count(*) FROM wc WHERE w NOT IN {specials}")
    max_vocabulary, chosen, automatic, max_ngrams = limits
    if automatic:
        auto_vocabulary, auto_thresholds = auto_limits(int(words), requested_order)
        max_vocabulary = auto_vocabulary if max_vocabulary is None else max_vocabulary
        chosen = auto_thresholds if chosen is None else chosen
    thresholds = chosen or (0,) * requested_order
    cap = f"WHERE rank <= {int(max_vocabulary)}" if max_vocabulary is not None else ""
    run(
        f"""CREATE TEMP TABLE vocab AS
        SELECT w, (rank + 2)::INTEGER AS id, c FROM (
          SELECT w, c, row_number() OVER (ORDER BY c DESC, w) AS rank FROM wc WHERE w NOT IN {specials}) {cap}"""
    )
    run("DROP TABLE wc")
    types_after, kept_tokens = engine.run("SELECT count(*), coalesce(sum(c), 0) FROM vocab")[0]
    vocab_size = int(types_after) + 3
    order = int(min(requested_order, int(longest) + 2))

    engine.phase = "count"
    # raw counts: each sentence's ids (a lookup in an ENUM of the vocabulary, no join), padded with <s> and
    # "none" (shorter histories start with <s>), cut into n-grams by list slices, one packed key per n-gram
    key = _Packing(vocab_size, order)
    run("CREATE TYPE voc AS ENUM (SELECT w FROM vocab ORDER BY id)")
    ids = f"list_transform({tokens}, lambda x: coalesce(enum_code(try_cast(x AS voc))::{key.type} + 3, 2))"
    head = [key.none] * (order - 2) + [0] if order > 1 else []
    padded = f"list_concat({head}::{key.type}[], {ids}, [1]::{key.type}[])"
    grams = f"list_transform(range(1, len(p) - {order - 2}), lambda i: {key.packed('p', 'i')})"
    # the keys are stored before they are grouped: DuckDB 2.0's aggregate fed straight by an unnest grows
    # its table past the memory limit instead of spilling (out of memory at 100M words with a 1 GB limit)
    run(
        f"""CREATE TEMP TABLE keys AS SELECT unnest({grams}) AS k
        FROM (SELECT {padded} AS p FROM {source}) WHERE len(p) > {order}""",
        share["count"] * 0.6,
    )
    run(
        f"CREATE TEMP TABLE raw AS SELECT {key.columns()}, c FROM (SELECT k, count(*) AS c FROM keys GROUP BY k)",
        share["count"] * 0.4,
    )
    run("DROP TABLE keys")

    engine.phase = "adjust"
    # 2. adjusted counts a1..aN (a1 dense over the vocabulary)
    if order == 1:
        run(
            """CREATE TEMP TABLE a1 AS
            WITH ids AS (SELECT id AS w1 FROM vocab UNION ALL SELECT * FROM (VALUES (0), (1), (2)))
            SELECT ids.w1, CASE WHEN ids.w1 = 0 THEN 0 ELSE coalesce(raw.c, 0) END AS c
            FROM ids LEFT JOIN raw USING (w1)"""
        )
    else:
        run(f"CREATE TEMP TABLE a{order} AS SELECT {_cols('w', 1, order)}, c FROM raw WHERE w1 IS NOT NULL")
    for n in range(order - 1, 0, -1):
        if n == 1:
            run(
                """CREATE TEMP TABLE a1 AS
                WITH cont AS (SELECT w2 AS w1, count(*) AS c FROM a2 GROUP BY w2),
                ids AS (SELECT id AS w1 FROM vocab UNION ALL SELECT * FROM (VALUES (0), (1), (2)))
                SELECT ids.w1, CASE WHEN ids.w1 = 0 THEN 0 ELSE coalesce(cont.c, 0) END AS c
                FROM ids LEFT JOIN cont USING (w1)""",
                share["adjust"] / max(order - 1, 1),
            )
            continue
        first = order - n + 1  # the <s>-initial n-grams are the raw rows with w1..w(first-1) NULL
        run(
            f"""CREATE TEMP TABLE a{n} AS
            SELECT {_renamed(2, n + 1)}, count(*) AS c FROM a{n + 1} GROUP BY ALL
            UNION ALL
            SELECT {_renamed(first, order)}, c FROM raw WHERE w{first - 1} IS NULL AND w{first} IS NOT NULL""",
            share["adjust"] / max(order - 1, 1),
        )
    run("DROP TABLE raw")

    engine.phase = "estimate"
    # 3. discounts, then probabilities p1..pN and context statistics x2..xN
    discounts: list[Discounts] = []
    for n in range(1, order + 1):
        coc = engine.run(
            f"SELECT count(*) FILTER (c = 1), count(*) FILTER (c = 2), count(*) FILTER (c = 3),"
            f" count(*) FILTER (c = 4) FROM a{n}"
        )[0]
        discounts.append(discounts_from_count_of_counts(n, tuple(int(x) for x in coc), fallback))
    step = share["estimate"] / order
    d1 = _discount_case(discounts[0])
    run(
        f"""CREATE TEMP TABLE p1 AS
        WITH x AS (SELECT sum(c)::DOUBLE AS total, sum({d1}) AS mass FROM a1)
        SELECT w1, c, CASE WHEN w1 = 0 THEN 0.0
          ELSE (CASE WHEN c > 0 THEN (c - {d1}) / x.total ELSE 0.0 END) + x.mass / x.total / {vocab_size - 1}
          END AS p
        FROM a1, x""",
        step,
    )
    for n in range(2, order + 1):
        dn = _discount_case(discounts[n - 1])
        ctx = _cols("w", 1, n - 1)
        run(
            f"""CREATE TEMP TABLE x{n} AS
            SELECT {ctx}, sum(c)::DOUBLE AS total, sum({dn}) AS mass FROM a{n} GROUP BY ALL""",
            step / 3,
        )
        # two single joins, not one three-way join: from a.w2 = x.w2 and a.w2 = l.w1 the optimiser may join
        # x and l first on x.w2 = l.w1 (every context with every n-gram continuing it), which at 100M words
        # spilled over 40 GB before the first row was out
        run(
            f"""CREATE TEMP TABLE q{n} AS
            SELECT {_cols("a.w", 1, n)}, a.c, (a.c - {_discount_case(discounts[n - 1], "a.c")}) / x.total AS own,
              x.mass / x.total AS rest
            FROM a{n} a JOIN x{n} x ON {_on("a", "x", ((i, i) for i in range(1, n)))}""",
            step / 3,
        )
        run(f"DROP TABLE a{n}")
        run(
            f"""CREATE TEMP TABLE p{n} AS SELECT {_cols("q.w", 1, n)}, q.c, q.own + q.rest * l.p AS p
            FROM q{n} q JOIN p{n - 1} l ON {_on("q", "l", ((i, i - 1) for i in range(2, n + 1)))}""",
            step / 3,
        )
        run(f"DROP TABLE q{n}")
    run("DROP TABLE a1")

    engine.phase = "prune"
    # 4. pruning (top-down), with renormalised backoff weights where a context lost entries
    before = tuple(engine.count(f"SELECT count(*) FROM p{n}") for n in range(1, order + 1))
    thresholds = tuple(thresholds[:order])
    if max_ngrams is not None and order > 1 and sum(before) > max_ngrams:
        thresholds = _fitted_thresholds(engine, before, thresholds, max_ngrams)
    after = _prune(engine, order, thresholds, share["prune"] / order)
    # the fit counts n-grams over the thresholds; the prefixes and suffixes of kept longer ones stay too
    while max_ngrams is not None and order > 1 and sum(after) > max_ngrams:
        thresholds = _stricter(thresholds)
        after = _prune(engine, order, thresholds, 0.0)
    pruning = any(thresholds[1:order])
    for n in range(2, order + 1):
        ctx = _cols("w", 1, n - 1)
        if pruning:
            # sums over the kept continuations of each context, of their own and their backoff probabilities
            run(
                f"""CREATE TEMP TABLE b{n} AS
                WITH kept AS (
                  SELECT {_cols("k.w", 1, n - 1)}, count(*) AS kept, sum(k.p) AS p, sum(l.p) AS lower
                  FROM k{n} k JOIN k{n - 1} l ON {_on("k", "l", ((i, i - 1) for i in range(2, n + 1)))}
                  GROUP BY ALL),
                total AS (SELECT {ctx}, count(*) AS entries FROM p{n} GROUP BY ALL)
                SELECT {ctx}, CASE WHEN kept.kept = total.entries THEN x.mass / x.total
                  ELSE greatest(1.0 - kept.p, 1e-12) / greatest(1.0 - kept.lower, 1e-12) END AS bow
                FROM kept JOIN total USING ({ctx}) JOIN x{n} x USING ({ctx})""",
                share["prune"] / order,
            )
        else:
            run(f"CREATE TEMP VIEW b{n} AS SELECT {ctx}, mass / total AS bow FROM x{n}")

    engine.phase = "write"
    # 5. ARPA: one section file per order, written by the engine, then the header and sections
    vocab_sql = f"SELECT id, w FROM vocab UNION ALL SELECT * FROM (VALUES (0, '{BOS}'), (1, '{EOS}'), (2, '{UNK}'))"
    run(f"CREATE TEMP TABLE words AS {vocab_sql}")
    sections = []
    for n in range(1, order + 1):
        joins = " ".join(f"JOIN words v{i} ON v{i}.id = k.w{i}" for i in range(1, n + 1))
        text = " || ' ' || ".join(f"v{i}.w" for i in range(1, n + 1))
        prob = f"CASE WHEN k.p > 0 THEN printf('%.6f', log10(k.p)) ELSE '{_LOG10_ZERO:.6f}' END"
        if n < order:
            bow_join = f"LEFT JOIN b{n + 1} b ON {_on('k', 'b', ((i, i) for i in range(1, n + 1)))}"
            bow = " || CASE WHEN b.bow IS NULL THEN '' ELSE chr(9) || printf('%.6f', log10(b.bow)) END"
        else:
            bow_join = bow = ""
        section = scratch / f"section{n}.txt"
        run(
            f"""COPY (SELECT {prob} || chr(9) || {text}{bow} FROM k{n} k {joins} {bow_join})
            TO {_sql_string(section)} (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\\x1f')""",
            share["write"] / order,
        )
        sections.append(section)
    vocabulary = [w for (w,) in engine.run("SELECT w FROM words ORDER BY id")]
    with arpa_path.open("wb") as out:
        header = "".join(f"ngram {n}={count}\n" for n, count in enumerate(after, start=1))
        out.write(f"\\data\\\n{header}".encode())
        for n, section in enumerate(sections, start=1):
            out.write(f"\n\\{n}-grams:\n".encode())
            with section.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            section.unlink()
        out.write(b"\n\\end\\\n")
    report = PruningReport(
        max_vocabulary=max_vocabulary,
        thresholds=thresholds[:order],
        vocabulary_before=types_before + 3,
        vocabulary_after=vocab_size,
        tokens_mapped_to_unk=int(words) - int(kept_tokens),
        ngrams_before=before,
        ngrams_after=after,
    )
    return ExternalLMResult(
        arpa_path=arpa_path,
        order=order,
        ngram_counts=list(after),
        vocabulary=vocabulary,
        discounts=discounts,
        pruning=report,
        words=int(words),
        sentences=int(sentences),
        model=_kept_model(engine, order, vocabulary, keep_model) if keep_model else None,
        seconds=dict(engine.seconds),
    )


def _stricter(thresholds: tuple[int, ...]) -> tuple[int, ...]:
    """The next pruning step: the lowest order >= 2 that stays at most the threshold of the order above it goes
    up by one (so (0, 0, 0) -> (0, 0, 1) -> (0, 1, 1) -> (0, 1, 2) -> (0, 2, 2) ...: higher orders first)."""
    t = list(thresholds)
    for n in range(1, len(t)):
        if n == len(t) - 1 or t[n] < t[n + 1]:
            t[n] += 1
            return tuple(t)
    return tuple(t)  # pragma: no cover - the loop always returns for orders >= 2


def _fitted_thresholds(
    engine: _Engine, before: tuple[int, ...], thresholds: tuple[int, ...], max_ngrams: int
) -> tuple[int, ...]:
    """The least strict thresholds (by :func:`_stricter` steps) whose n-grams over them number ``max_ngrams``
    at most, from each order's counts of counts (the prefixes and suffixes that pruning keeps are not counted)."""
    histograms: list[dict[int, int]] = [{}]
    for n in range(2, len(before) + 1):
        histograms.append(dict(engine.run(f"SELECT c, count(*) FROM p{n} WHERE c <= 100000 GROUP BY c")))

    def kept(t: tuple[int, ...]) -> int:
        pruned = sum(k for i in range(1, len(t)) for c, k in histograms[i].items() if c <= t[i])
        return sum(before) - int(pruned)

    while kept(thresholds) > max_ngrams and max(thresholds) < 100000:
        thresholds = _stricter(thresholds)
    return thresholds


def _prune(engine: _Engine, order: int, thresholds: tuple[int, ...], share: float) -> tuple[int, ...]:
    """Tables ``k1..kN`` of the kept n-grams (views of ``p1..pN`` when nothing is pruned); their sizes."""
    pruning = any(thresholds[1:order])
    for name, kind in engine.run(
        "SELECT table_name, table_type FROM information_schema.tables WHERE regexp_full_match(table_name, 'k[0-9]+')"
    ):
        engine.run(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} {name}")
    for n in range(order, 1, -1):
        keep = f"c > {int(thresholds[n - 1])}"
        if n < order:
            prefix = _on("h", "p", ((i, i) for i in range(1, n + 1)))
            suffix = _on("h", "p", ((i + 1, i) for i in range(1, n + 1)))
            keep += f" OR EXISTS (SELECT 1 FROM k{n + 1} h WHERE {prefix})"
            keep += f" OR EXISTS (SELECT 1 FROM k{n + 1} h WHERE {suffix})"
        if pruning:
            engine.run(f"CREATE TEMP TABLE k{n} AS SELECT * FROM p{n} p WHERE {keep}", share)
        else:
            engine.run(f"CREATE TEMP VIEW k{n} AS SELECT * FROM p{n}")
    engine.run("CREATE TEMP VIEW k1 AS SELECT * FROM p1")
    return tuple(engine.count(f"SELECT count(*) FROM k{n}") for n in range(1, order + 1))


def _kept_model(engine: _Engine, order: int, vocabulary: list[str], keep: bool | Path) -> BackoffLM:
    """The whole model (``keep`` True), or the part of it that scores the sentences of file ``keep``: every
    unigram and the listed n-grams occurring in them (with <s> and </s>), which is all that the backoff rule
    reads when scoring them. Both n-gram sets are closed under prefixes, as the layout needs."""
    if not isinstance(keep, Path):
        return _backoff_model(engine, order, vocabulary, "k")
    ids = f"list_transform({_TOKENS}, lambda x: coalesce(enum_code(try_cast(x AS voc))::INTEGER + 3, 2))"
    sentences = _lines(keep, engine.engine_mb)
    engine.run(f"CREATE TEMP TABLE probe AS SELECT list_concat([0], {ids}, [1]) AS p FROM {sentences}")
    engine.run("CREATE TEMP VIEW s1 AS SELECT * FROM k1")
    for n in range(2, order + 1):
        grams = ", ".join(f"p[i + {j - 1}] AS w{j}" for j in range(1, n + 1))
        engine.run(
            f"""CREATE TEMP TABLE s{n} AS SELECT k.* FROM k{n} k JOIN (
              SELECT DISTINCT {grams} FROM (SELECT p, unnest(range(1, len(p) - {n - 2})) AS i FROM probe)
            ) q ON {_on("k", "q", ((j, j) for j in range(1, n + 1)))}"""
        )
    model = _backoff_model(engine, order, vocabulary, "s")
    model.metadata["restricted_to"] = "the n-grams of the scoring sentences"
    return model


def _backoff_model(engine: _Engine, order: int, vocabulary: list[str], tables: str) -> BackoffLM:
    """The n-grams of tables ``{tables}1..N`` as a :class:`BackoffLM` (the layout of :mod:`ngram_counts`)."""
    size = len(vocabulary)
    levels = []
    for n in range(1, order + 1):
        if n == 1:
            index = "k.w1"
        else:
            prefix = _cols("w", 1, n - 1)
            engine.run(
                f"""CREATE TEMP TABLE i{n - 1} AS
                SELECT {prefix}, {"w1" if n == 2 else f"row_number() OVER (ORDER BY {prefix}) - 1"} AS idx
                FROM {tables}{n - 1}"""
            )
            index = f"i.idx::BIGINT * {size} + k.w{n}"  # INTEGER * vocabulary overflows past 46,340 words
        prefix_join = f"JOIN i{n - 1} i ON {_on('k', 'i', ((j, j) for j in range(1, n)))}" if n > 1 else ""
        bow_join = f"LEFT JOIN b{n + 1} b ON {_on('k', 'b', ((j, j) for j in range(1, n + 1)))}" if n < order else ""
        bow = "b.bow" if n < order else "NULL::DOUBLE"
        table = engine.con.execute(
            f"""SELECT ({index})::BIGINT AS key,
              CASE WHEN k.p > 0 THEN log10(k.p) ELSE {_LOG10_ZERO} END AS prob,
              coalesce(log10({bow}), 0.0) AS bow, {bow} IS NOT NULL AS has_bow
            FROM {tables}{n} k {prefix_join} {bow_join} ORDER BY key"""
        ).fetchnumpy()
        levels.append(LevelTable(table["key"], table["prob"], table["bow"], table["has_bow"]))
    metadata = {"smoothing": "interpolated modified Kneser-Ney"}
    return BackoffLM(vocab=list(vocabulary), levels=levels, metadata=metadata)
