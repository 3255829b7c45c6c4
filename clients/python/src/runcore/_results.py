"""What some ``Run`` calls return: ``AlertResult`` (``alert``), ``Metric``
(``define_metric``) and ``RunStatus`` (``status``). Dataclasses, in a module of
their own that is loaded on first use: ``dataclasses`` imports ``inspect``, which
would cost ``import runcore`` more than the rest of the run path (issue 20)."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class AlertResult:
    """What ``Run.alert`` did (W&B returns None; runcore tells whether it was sent)."""

    sent: bool
    throttled: bool
    #: Unix seconds after which an alert with this title is sent again.
    throttled_until: float

    def __bool__(self) -> bool:
        return self.sent


@dataclasses.dataclass(frozen=True)
class Metric:
    """A metric definition as the sidecar holds it (returned by ``define_metric``)."""

    name: str
    step_metric: Optional[str] = None
    step_sync: bool = False
    hidden: bool = False
    summary: tuple[str, ...] = ()
    goal: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """``Run.status()``: the run's state and how far its rows have got."""

    state: str
    #: The step the next committed row gets (the client's view).
    step: int
    #: Committed history rows, per the sidecar.
    history_rows: int
    rows_logged: int
    rows_acked: int
    rows_pending: int
    #: Rows refused by the sidecar or given up on after it stayed away.
    rows_lost: int
    #: Rows not recorded because of the step rules (a step smaller than the current).
    rows_dropped: int
    batches_sent: int
    batches_resent: int
    #: Unix seconds of the last acknowledgement (0 before the first).
    sync_time: float
    should_stop: bool

    @property
    def sync_items_total(self) -> int:
        return self.rows_logged

    @property
    def sync_items_pending(self) -> int:
        return self.rows_pending
