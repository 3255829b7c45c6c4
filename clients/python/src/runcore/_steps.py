"""The client's mirror of the sidecar's step rules (W&B's ``run.log``), so that
``run.step`` is current without a round trip and a row at a smaller step is dropped
before it is sent. The sidecar applies the same rules (``service/src/run/state.rs``);
tests/vectors/log_steps.json holds the cases both are tested against.
"""

from __future__ import annotations

from typing import Optional


class StepMirror:
    """The run's step (the step the next committed row gets) and whether a row is
    pending at it."""

    __slots__ = ("step", "pending")

    def __init__(self, step: int) -> None:
        self.step = step
        self.pending = False

    def advance(self, has_data: bool, step: Optional[int], commit: Optional[bool]) -> bool:
        """Applies one ``log(data, step, commit)``; False when the row is dropped
        (a step smaller than the current one)."""
        if step is None:
            do_commit = True if commit is None else commit
        else:
            if step < self.step:
                return False
            if step > self.step:
                # The pending row (if any) is committed at the old step first.
                self.step = step
                self.pending = False
            do_commit = False if commit is None else commit
        if has_data:
            self.pending = True
        if do_commit and self.pending:
            self.step += 1
            self.pending = False
        return True

    def finish(self) -> None:
        """Finish commits the pending row."""
        if self.pending:
            self.step += 1
            self.pending = False
