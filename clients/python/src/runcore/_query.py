"""What ``runcore.Api().runs(filters=..., order=...)`` means, and the even
downsampling ``Run.history(samples=...)`` does: plain functions over run fields,
no I/O.

Filters are the MongoDB-style queries W&B's public API takes, evaluated in the
client: field names ``state``, ``id``, ``name`` (``display_name``,
``displayName``), ``group``, ``job_type`` (``jobType``), ``tags``, ``notes``,
``created_at`` (``createdAt``, ISO text), ``heartbeat_at``, ``config.KEY`` (or
W&B's ``config.KEY.value``) and ``summary_metrics.KEY`` (or ``summary.KEY``);
operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists $regex`` and ``$and $or
$nor $not``. A plain value means ``$eq``; on ``tags`` it means "has this tag".
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

_MISSING = object()

#: Field names W&B's queries use -> runcore's.
_ALIASES = {
    "display_name": "name",
    "displayName": "name",
    "jobType": "job_type",
    "createdAt": "created_at",
    "heartbeatAt": "heartbeat_at",
    "summary": "summary_metrics",
}


def field(run: Any, name: str) -> Any:
    """The value of field ``name`` of a run (``_MISSING`` when it has none)."""
    head, _, rest = name.partition(".")
    head = _ALIASES.get(head, head)
    if head in ("config", "summary_metrics") and rest:
        values = run.config if head == "config" else run.summary_metrics
        parts = rest.split(".")
        if head == "config" and parts[-1] == "value" and len(parts) > 1 and parts[0] in values:
            parts = parts[:-1]  # W&B's config.KEY.value
        v: Any = values
        for p in parts:
            if not isinstance(v, Mapping) or p not in v:
                return _MISSING
            v = v[p]
        return v
    if rest:
        return _MISSING
    return getattr(run, head, _MISSING)


def _compare(op: str, have: Any, want: Any) -> bool:
    try:
        if op == "$gt":
            return bool(have > want)
        if op == "$gte":
            return bool(have >= want)
        if op == "$lt":
            return bool(have < want)
        return bool(have <= want)
    except TypeError:
        return False


def _eq(have: Any, want: Any) -> bool:
    if isinstance(have, (list, tuple)) and not isinstance(want, (list, tuple)):
        return want in have
    return bool(have == want)


def _op(op: str, have: Any, want: Any) -> bool:
    if op == "$exists":
        return (have is not _MISSING) == bool(want)
    if have is _MISSING:
        return op in ("$ne", "$nin")
    if op == "$eq":
        return _eq(have, want)
    if op == "$ne":
        return not _eq(have, want)
    if op == "$in":
        return any(_eq(have, w) for w in want)
    if op == "$nin":
        return not any(_eq(have, w) for w in want)
    if op == "$regex":
        return isinstance(have, str) and re.search(str(want), have) is not None
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _compare(op, have, want)
    raise ValueError(f"runs filter: unknown operator {op!r}; use $eq $ne $gt $gte $lt $lte $in $nin $exists $regex")


def _value_matches(have: Any, cond: Any) -> bool:
    if isinstance(cond, Mapping) and cond and all(isinstance(k, str) and k.startswith("$") for k in cond):
        for op, want in cond.items():
            if op == "$not":
                if _value_matches(have, want):
                    return False
            elif not _op(op, have, want):
                return False
        return True
    return have is not _MISSING and _eq(have, cond)


def matches(run: Any, query: Optional[Mapping[str, Any]]) -> bool:
    """Whether a run satisfies a W&B-style filter."""
    for key, cond in (query or {}).items():
        if key == "$and":
            ok = all(matches(run, q) for q in cond)
        elif key == "$or":
            ok = any(matches(run, q) for q in cond)
        elif key == "$nor":
            ok = not any(matches(run, q) for q in cond)
        elif key.startswith("$"):
            raise ValueError(f"runs filter: unknown operator {key!r} at the top level; use $and, $or or $nor")
        else:
            ok = _value_matches(field(run, key), cond)
        if not ok:
            return False
    return True


def needs_details(query: Any) -> bool:
    """Whether a filter or order reads config or summary (which cost a call per run)."""
    if isinstance(query, str):
        head = _ALIASES.get(query.lstrip("+-").split(".")[0], query.lstrip("+-").split(".")[0])
        return head in ("config", "summary_metrics")
    if isinstance(query, Mapping):
        return any(needs_details(k) or needs_details(v) for k, v in query.items())
    if isinstance(query, (list, tuple)):
        return any(needs_details(q) for q in query)
    return False


#: Times sort by their exact value (their text has whole seconds).
_SORT_AS = {"created_at": "_created", "heartbeat_at": "_heartbeat"}


def sort(runs: Sequence[Any], order: Optional[str]) -> list[Any]:
    """Runs ordered as W&B's ``order``: descending by default, ascending with a
    leading ``+``; runs without the field go last."""
    if not order:
        return list(runs)
    ascending = order.startswith("+")
    name = order.lstrip("+-")
    name = _SORT_AS.get(_ALIASES.get(name, name), name)
    have = [(field(r, name), r) for r in runs]
    present = [(v, r) for v, r in have if v is not _MISSING and v is not None]
    absent = [r for v, r in have if v is _MISSING or v is None]
    try:
        present.sort(key=lambda p: p[0], reverse=not ascending)
    except TypeError:
        present.sort(key=lambda p: str(p[0]), reverse=not ascending)
    return [r for _, r in present] + absent


class Decimator:
    """Keeps at most ``samples`` rows of a stream of unknown length, evenly spread
    and with the last row, in O(samples) memory: rows are kept at a stride that
    doubles whenever twice ``samples`` are held."""

    def __init__(self, samples: int) -> None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.samples = samples
        self._kept: list[dict[str, Any]] = []
        self._stride = 1
        self._seen = 0
        self._last: Optional[dict[str, Any]] = None

    def add(self, row: dict[str, Any]) -> None:
        if self._seen % self._stride == 0:
            self._kept.append(row)
            if len(self._kept) >= 2 * self.samples:
                self._kept = self._kept[::2]
                self._stride *= 2
        self._seen += 1
        self._last = row

    def rows(self) -> list[dict[str, Any]]:
        kept = self._kept
        if len(kept) > self.samples:
            n = len(kept)
            picks = [round(i * (n - 1) / (self.samples - 1)) for i in range(self.samples)] if self.samples > 1 else [0]
            kept = [kept[i] for i in sorted(set(picks))]
        if self._last is not None and kept and kept[-1] is not self._last:
            if len(kept) < self.samples:
                kept = kept + [self._last]
            else:
                kept = kept[:-1] + [self._last]
        return kept


def like(pattern: str) -> Callable[[str], bool]:
    """A predicate for SQL LIKE (``%`` any run of characters, ``_`` one), as W&B's
    ``run.files(pattern=...)`` takes it."""
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    compiled = re.compile(rx + r"\Z", re.DOTALL)
    return lambda name: compiled.match(name) is not None


def as_list(keys: Optional[Iterable[str]]) -> list[str]:
    if keys is None:
        return []
    if isinstance(keys, str):
        return [keys]
    return [str(k) for k in keys]
