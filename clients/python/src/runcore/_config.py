"""``run.config`` and ``run.summary``: dicts (with attribute access) whose changes
reach the sidecar through their run, and the checks ``init`` and the public API
share for the values given to them."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Iterator, Optional, Protocol

from . import _values
from ._errors import ConfigError


class _Owner(Protocol):
    """What ``config`` and ``summary`` need of their run (``_run.Run``, which
    imports this module)."""

    id: str

    def _call(self, what: str, method: str, request: Any) -> Any: ...

    def _summary_now(self) -> dict[str, Any]: ...

    def _summary_change(self, values: dict[str, Any], remove: list[str]) -> None: ...


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "__dict__") and type(value).__name__ == "Namespace":  # argparse
        return dict(vars(value))
    if hasattr(value, "flag_values_dict"):  # absl flags
        return dict(value.flag_values_dict())
    raise ValueError(f"{what} must be a dict or an argparse.Namespace, not {type(value).__name__}")


def _normalized(values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Values as the sidecar will hold them (tuples become lists, numpy plain)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if not isinstance(k, str) or not k:
            raise ValueError(f"{what} keys must be non-empty str, got {k!r}")
        out[k] = _values.plain(k, v)
    return out


def _checked_keys(values: dict[str, Any], what: str) -> dict[str, Any]:
    for k in values:
        if not isinstance(k, str) or not k:
            raise ValueError(f"{what} keys must be non-empty str, got {k!r}")
    return values


class _KeysAsAttributes(MutableMapping[str, Any]):
    """Keys read and set as attributes too (``run.config.lr = 0.1``), as in W&B;
    names starting with ``_`` are the object's own."""

    #: What the mapping is called in messages.
    _what: str

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"{self._what} has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        else:
            self.update({key: value})


class Config(_KeysAsAttributes):
    """``run.config``: a dict (with attribute access) whose updates reach the
    sidecar. As in W&B, changing a key's value raises ``ConfigError`` unless
    ``allow_val_change=True`` was given to ``init`` or ``update``."""

    _what = "config"

    _run: _Owner
    _items: dict[str, Any]
    _allow_val_change: bool

    def __init__(self, run: _Owner, items: dict[str, Any], allow_val_change: bool) -> None:
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_items", items)
        object.__setattr__(self, "_allow_val_change", allow_val_change)

    def update(self, d: Any = None, allow_val_change: Optional[bool] = None, **kwargs: Any) -> None:  # type: ignore[override]
        new = _as_dict(d, "config")
        new.update(kwargs)
        if not new:
            return
        values = _normalized(new, "config")
        allow = self._allow_val_change if allow_val_change is None else allow_val_change
        if not allow:
            for k, v in values.items():
                if k in self._items and self._items[k] != v:
                    raise ConfigError(
                        f"config key {k!r} is {self._items[k]!r}; changing it to {v!r} needs "
                        "config.update(..., allow_val_change=True)"
                    )
        self._run._call("config update", "UpdateConfig", {"run_id": self._run.id, "config": new})
        self._items.update(values)

    def setdefaults(self, d: Any) -> None:
        self.update({k: v for k, v in _as_dict(d, "config").items() if k not in self._items})

    def as_dict(self) -> dict[str, Any]:
        return dict(self._items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self._items:
            raise KeyError(key)
        self._run._call("config update", "UpdateConfig", {"run_id": self._run.id, "remove": [key]})
        del self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __delattr__(self, key: str) -> None:
        del self[key]

    def __repr__(self) -> str:
        return f"Config({self._items!r})"


class Summary(_KeysAsAttributes):
    """``run.summary``: reads show the sidecar's summary (last value per key, or the
    aggregations ``define_metric`` asked for); a set value wins over aggregation
    for its key (``run.summary["best_acc"] = 0.9``)."""

    _what = "summary"

    _run: _Owner

    def __init__(self, run: _Owner) -> None:
        object.__setattr__(self, "_run", run)

    def _get(self) -> dict[str, Any]:
        return self._run._summary_now()

    def update(self, d: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        new = _as_dict(d, "summary")
        new.update(kwargs)
        if new:
            self._run._summary_change(new, [])

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self._get():
            raise KeyError(key)
        self._run._summary_change({}, [key])

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._get()))

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return f"Summary({self._get()!r})"
