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

1. one scan of the text: word counts (vocabulary, cap), then every token with its ``N-1``
   predecessors in the sentence is grouped: full ``N``-grams give raw top-order counts, shorter
   ones (which can only start with ``<s>``) the raw counts of the ``<s>``-initial lower orders;
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

Known limit (open): spill disk. At 10M words the engine spills ~0.5 GB; at 100M words with a
2 GB budget the spill passed 45 GB and was still growing when the run was stopped (see the
issue-16 report), so a billion-word corpus needs the spill cut first: not materialising the
sentence table, n-grams from list slices instead of a window over every token, one packed
BIGINT key per n-gram, and ``max_temp_directory_size`` so a full disk fails clearly.

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
from voxtrain_trainer.ml.kneser_ney import DEFAULT_FALLBACK, Discounts, discounts_from_count_of_counts

FractionCallback = Callable[[float], None]

DEFAULT_MEMORY_MB = 2048
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

    def __init__(self, spill_dir: Path, memory_mb: int, threads: int | None, progress: _Progress) -> None:
        engine_mb = max(int(memory_mb * _ENGINE_FRACTION) - _ENGINE_OFFSET_MB, _MIN_ENGINE_MB)
        self.con = duckdb.connect(config={"memory_limit": f"{engine_mb}MB", "temp_directory": str(spill_dir)})
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
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]  # an exception instance, checked by the key
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
    work_dir: Path | None = None,
    max_vocabulary: int | None = None,
    prune_thresholds: Sequence[int] | None = None,
    automatic_limits: bool = False,
    keep_model: bool = False,
    fallback: tuple[float, float, float] = DEFAULT_FALLBACK,
    threads: int | None = None,
    progress: FractionCallback | None = None,
) -> ExternalLMResult:
    """Estimate an order-``order`` model of ``corpus`` into ``arpa_path`` (see module contract).

    ``max_vocabulary`` (words, specials not counted) and ``prune_thresholds`` (one count per
    order; 0: keep all; unigrams are never pruned) default to none, or with ``automatic_limits``
    to :func:`auto_limits` of the corpus's word count. ``keep_model`` also returns the model as a
    :class:`BackoffLM` (in memory: for scoring, e.g. perplexity). Raises ``ValueError`` for
    an empty corpus or bad settings.
    """
    if not 1 <= order <= 6:
        raise ValueError("order must be between 1 and 6")
    if memory_mb < _MIN_ENGINE_MB:
        raise ValueError(f"memory_mb must be at least {_MIN_ENGINE_MB}")
    if max_vocabulary is not None and max_vocabulary < 1:
        raise ValueError("max_vocabulary must be positive")
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
        (scratch / "spill").mkdir()
        engine = _Engine(scratch / "spill", memory_mb, threads, tracker)
        try:
            return _estimate(
                engine,
                text_path,
                arpa_path,
                order,
                (max_vocabulary, thresholds, automatic_limits),
                fallback,
                scratch,
                keep_model,
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
    limits: tuple[int | None, tuple[int, ...] | None, bool],
    fallback: tuple[float, float, float],
    scratch: Path,
    keep_model: bool,
) -> ExternalLMResult:
    run = engine.run
    share = _PHASES
    # 1. sentences -> word counts -> vocabulary (ids 0, 1, 2 are <s>, </s>, <unk>)
    run(
        f"""CREATE TEMP TABLE sent AS
        SELECT row_number() OVER () AS sid, w FROM (
          SELECT list_filter(string_split(line, ' '), lambda x: x <> '') AS w
          FROM read_csv({_sql_string(text_path)}, columns = {{'line': 'VARCHAR'}}, header = false,
                        delim = '\\x1f', quote = '', escape = '', auto_detect = false, max_line_size = 67108864)
        ) WHERE len(w) > 0""",
        share["read"] * 0.6,
    )
    sentences, words = engine.run("SELECT count(*), coalesce(sum(len(w)), 0) FROM sent")[0]
    if not sentences:
        raise ValueError("cannot estimate a language model from no sentences")
    run(
        f"""CREATE TEMP TABLE wc AS SELECT w, count(*) AS c FROM (SELECT unnest(w) AS w FROM sent)
        WHERE w NOT IN ('{BOS}', '{EOS}', '{UNK}') GROUP BY w""",
        share["read"] * 0.4,
    )
    types_before = engine.count("SELECT count(*) FROM wc")
    max_vocabulary, chosen, automatic = limits
    if automatic:
        auto_vocabulary, auto_thresholds = auto_limits(int(words), requested_order)
        max_vocabulary = auto_vocabulary if max_vocabulary is None else max_vocabulary
        chosen = auto_thresholds if chosen is None else chosen
    thresholds = chosen or (0,) * requested_order
    cap = f"WHERE rank <= {int(max_vocabulary)}" if max_vocabulary is not None else ""
    run(
        f"""CREATE TEMP TABLE vocab AS
        SELECT w, (rank + 2)::INTEGER AS id, c FROM (
          SELECT w, c, row_number() OVER (ORDER BY c DESC, w) AS rank FROM wc) {cap}"""
    )
    types_after, kept_tokens = engine.run("SELECT count(*), coalesce(sum(c), 0) FROM vocab")[0]
    vocab_size = int(types_after) + 3
    order = int(min(requested_order, engine.count("SELECT max(len(w)) FROM sent") + 2))

    engine.phase = "count"
    # raw counts: every token with its order-1 predecessors; shorter histories start with <s>
    lags = ", ".join(f"lag(id, {order - i}) OVER s AS w{i}" for i in range(1, order))
    run(
        f"""CREATE TEMP TABLE raw AS
        SELECT {_cols("w", 1, order)}, count(*) AS c FROM (
          SELECT {lags}{"," if lags else ""} id AS w{order}, pos FROM (
            SELECT sid, 0 AS pos, 0 AS id FROM sent
            UNION ALL SELECT sid, len(w) + 1 AS pos, 1 AS id FROM sent
            UNION ALL SELECT t.sid, t.pos, coalesce(v.id, 2) AS id FROM (
              SELECT sid, unnest(w) AS w, generate_subscripts(w, 1) AS pos FROM sent) t
              LEFT JOIN vocab v ON t.w = v.w)
          WINDOW s AS (PARTITION BY sid ORDER BY pos))
        WHERE pos > 0 GROUP BY ALL""",
        share["count"],
    )
    run("DROP TABLE sent; DROP TABLE wc")

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
        run(
            f"""CREATE TEMP TABLE p{n} AS
            SELECT {_cols("a.w", 1, n)}, a.c, (a.c - {_discount_case(discounts[n - 1], "a.c")}) / x.total
              + x.mass / x.total * l.p AS p
            FROM a{n} a JOIN x{n} x ON {_on("a", "x", ((i, i) for i in range(1, n)))}
            JOIN p{n - 1} l ON {_on("a", "l", ((i, i - 1) for i in range(2, n + 1)))}""",
            step * 2 / 3,
        )
        run(f"DROP TABLE a{n}")
    run("DROP TABLE a1")

    engine.phase = "prune"
    # 4. pruning (top-down), with renormalised backoff weights where a context lost entries
    before = tuple(engine.count(f"SELECT count(*) FROM p{n}") for n in range(1, order + 1))
    pruning = any(thresholds[1:order])
    for n in range(order, 1, -1):
        keep = f"c > {int(thresholds[n - 1])}"
        if n < order:
            prefix = _on("h", "p", ((i, i) for i in range(1, n + 1)))
            suffix = _on("h", "p", ((i + 1, i) for i in range(1, n + 1)))
            keep += f" OR EXISTS (SELECT 1 FROM k{n + 1} h WHERE {prefix})"
            keep += f" OR EXISTS (SELECT 1 FROM k{n + 1} h WHERE {suffix})"
        if pruning:
            run(f"CREATE TEMP TABLE k{n} AS SELECT * FROM p{n} p WHERE {keep}", share["prune"] / order)
        else:
            run(f"CREATE TEMP VIEW k{n} AS SELECT * FROM p{n}")
    run("CREATE TEMP VIEW k1 AS SELECT * FROM p1")
    after = tuple(engine.count(f"SELECT count(*) FROM k{n}") for n in range(1, order + 1))
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
        model=_backoff_model(engine, order, vocabulary) if keep_model else None,
        seconds=dict(engine.seconds),
    )


def _backoff_model(engine: _Engine, order: int, vocabulary: list[str]) -> BackoffLM:
    """The kept n-grams as a :class:`BackoffLM` (the layout of :mod:`ngram_counts`), built by the engine."""
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
                FROM k{n - 1}"""
            )
            index = f"i.idx * {size} + k.w{n}"
        prefix_join = f"JOIN i{n - 1} i ON {_on('k', 'i', ((j, j) for j in range(1, n)))}" if n > 1 else ""
        bow_join = f"LEFT JOIN b{n + 1} b ON {_on('k', 'b', ((j, j) for j in range(1, n + 1)))}" if n < order else ""
        bow = "b.bow" if n < order else "NULL::DOUBLE"
        table = engine.con.execute(
            f"""SELECT ({index})::BIGINT AS key,
              CASE WHEN k.p > 0 THEN log10(k.p) ELSE {_LOG10_ZERO} END AS prob,
              coalesce(log10({bow}), 0.0) AS bow, {bow} IS NOT NULL AS has_bow
            FROM k{n} k {prefix_join} {bow_join} ORDER BY key"""
        ).fetchnumpy()
        levels.append(LevelTable(table["key"], table["prob"], table["bow"], table["has_bow"]))
    metadata = {"smoothing": "interpolated modified Kneser-Ney"}
    return BackoffLM(vocab=list(vocabulary), levels=levels, metadata=metadata)
