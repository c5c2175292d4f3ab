"""The limits of what comes off and goes on Kafka.

Off the wire — :func:`decode`: raw record bytes and headers to an :class:`~voxtrain_shared.events.Envelope`,
or :class:`Poison` with a reason. Nothing else can escape it: size and JSON nesting are bounded *before* the
JSON parser runs (``'[' * 100000`` would otherwise blow the recursion limit), headers must be UTF-8, the
envelope and its payload must match a registered message type.

On the wire — :func:`fit`: an envelope whose JSON exceeds :data:`MAX_EVENT_BYTES` has its long lists of
details (``details`` in an error and in each of its entries) cut, the number left out recorded beside them
(``details_truncated``); the full details stay in the owning service's API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from .events import REGISTRY, Envelope, UnknownMessage

#: Largest record a consumer accepts (Kafka's own default limit is 1 MiB).
MAX_MESSAGE_BYTES = 1024 * 1024
#: Deepest JSON nesting a consumer accepts (our envelopes nest fewer than 10 levels).
MAX_JSON_DEPTH = 64
#: Size an event is cut down to before it enters the outbox (well under Kafka's 1 MiB).
MAX_EVENT_BYTES = 256 * 1024
#: Lists :func:`fit` may shorten, by key.
TRUNCATABLE = ("details",)

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class Poison(UnknownMessage):
    """A record that can never be handled; ``reason`` says why (it goes into the dead-letter headers)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_depth(raw: bytes) -> int:
    """Deepest nesting of arrays/objects in ``raw`` (brackets inside strings do not count); linear time."""
    brackets = _STRINGS.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for b in brackets:
        if b in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def decode_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as text, keys lower-cased; :class:`Poison` when a value is not UTF-8."""
    out: dict[str, str] = {}
    for key, value in headers or ():
        try:
            out[str(key).lower()] = (value or b"").decode("utf-8") if isinstance(value, bytes | None) else str(value)
        except UnicodeDecodeError:
            raise Poison(f"header {key!r} is not UTF-8") from None
    return out


def decode(raw: bytes | None, *, max_bytes: int = MAX_MESSAGE_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Envelope:
    """Parse a record's value into a validated envelope; :class:`Poison` (and nothing else) when it cannot be."""
    if raw is None or not raw:
        raise Poison("empty message")
    if len(raw) > max_bytes:
        raise Poison(f"message of {len(raw)} bytes exceeds the limit of {max_bytes} bytes")
    depth = json_depth(raw)
    if depth > max_depth:
        raise Poison(f"JSON nested {depth} levels deep exceeds the limit of {max_depth}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise Poison(f"not JSON: {exc}"[:500]) from None
    if not isinstance(data, dict):
        raise Poison(f"not a voxtrain envelope: a JSON {type(data).__name__}, not an object")
    try:
        return REGISTRY.parse(data)
    except UnknownMessage as exc:
        raise Poison(str(exc)[:2000]) from None
    except Exception as exc:  # a validator bug must not turn into a crash loop either
        raise Poison(f"cannot parse: {exc!r}"[:2000]) from None


def size(env: Envelope) -> int:
    return len(env.to_bytes())


def fit(env: Envelope, max_bytes: int = MAX_EVENT_BYTES) -> Envelope:
    """``env`` itself when it fits in ``max_bytes``; else a copy whose longest :data:`TRUNCATABLE` lists were
    halved (repeatedly, largest first) until it fits or none is left to cut. Each cut list gets a sibling
    ``<key>_truncated`` with how many entries were left out in total. The result may still be too large
    (e.g. one huge message text): the outbox relay then parks it instead of jamming."""
    if size(env) <= max_bytes:
        return env
    data = json.loads(json.dumps(env.data))  # a deep copy we may change
    while len(json.dumps(data, separators=(",", ":")).encode()) + _overhead(env) > max_bytes:
        target = _largest_list(data)
        if target is None:
            break
        holder, key = target
        items: list[Any] = holder[key]
        keep = len(items) // 2
        holder[key] = items[:keep]
        holder[f"{key}_truncated"] = int(holder.get(f"{key}_truncated") or 0) + len(items) - keep
    return env.model_copy(update={"data": data})


def _overhead(env: Envelope) -> int:
    return size(env.model_copy(update={"data": {}}))


def _largest_list(node: Any) -> tuple[dict[str, Any], str] | None:
    """The (holder, key) of the largest non-empty truncatable list anywhere under ``node``."""
    best: tuple[int, dict[str, Any], str] | None = None
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for key, value in cur.items():
                if key in TRUNCATABLE and isinstance(value, list) and value:
                    weight = len(json.dumps(value))
                    if best is None or weight > best[0]:
                        best = (weight, cur, key)
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(cur, list):
            stack.extend(v for v in cur if isinstance(v, dict | list))
    return None if best is None else (best[1], best[2])
