"""The unary calls of ``Run`` under the client contract, as a mixin: a call whose
sidecar is unreachable reconnects (re-attaching the run) and is made again; a run
the sidecar does not know is Init-ed again; a run it ended raises
``RunEndedError`` and is never resumed; an operator's stop request interrupts the
main thread (``Settings.on_stop``). Warnings are given once per kind.
"""

from __future__ import annotations

import _thread
import signal
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, Optional

from . import _enums
from ._config import Config
from ._contract import Action, Kind, classify
from ._errors import RunEndedError, RuncoreWarning
from ._rpc import RpcError, rpc_error, should_retry

if TYPE_CHECKING:
    from ._settings import Settings
    from ._sidecar import Sidecar

_OPEN_STATES = (_enums.RUNNING, _enums.PREEMPTING)
#: Why the sidecar ends a run in these states without its client finishing it.
_ENDED_WHY = {
    "crashed": "it saw no sign of life from this client within the client timeout, or its process gone",
    "killed": "the sidecar shut down with the run open",
    "preempted": "the run was preempting when its client went quiet",
    "finished": "it was finished, not by this client",
    "failed": "it was finished with an error, not by this client",
}


def _interrupt_main() -> bool:
    """Raises KeyboardInterrupt in the main thread, as Ctrl-C would (a real SIGINT
    to that thread, so a blocking sleep or read is interrupted too). False when
    SIGINT is not handled by Python here (ignored, or default: a signal would kill
    the process without finishing the run)."""
    if not callable(signal.getsignal(signal.SIGINT)):
        return False
    main = threading.main_thread()
    if not main.is_alive() or main.ident is None:
        return False
    try:
        signal.pthread_kill(main.ident, signal.SIGINT)
    except (AttributeError, OSError, ValueError):  # no pthread_kill on this platform
        _thread.interrupt_main()
    return True


class CallMethods:
    """Mixed into ``Run``; uses its identity, sidecar, settings and these fields."""

    id: str
    project: str
    settings: "Settings"
    config: Config
    _sidecar: "Sidecar"
    _init_request: dict[str, Any]
    _attach_lock: threading.Lock
    _attached_gen: int
    _warned: set[str]
    _ended: Optional[str]
    _should_stop: bool
    _finished: bool

    def _warn_once(self, kind: str, message: str, stacklevel: int = 4) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        warnings.warn(message, RuncoreWarning, stacklevel=stacklevel)

    def _call(
        self,
        what: str,
        method: str,
        request: Any,
        timeout: Optional[float] = None,
        retry: bool = True,
        reinit: bool = True,
    ) -> Any:
        """One unary call, handled as the client contract says: when the sidecar is
        unreachable it reconnects (and re-attaches the run) and calls again, for up
        to settings.reconnect_timeout (unless ``retry=False``); a run the sidecar
        does not know is Init-ed again (unless ``reinit=False``: for artifact
        calls NOT_FOUND may name the artifact); a run it ended raises
        RunEndedError."""
        deadline = time.monotonic() + (self.settings.reconnect_timeout if retry else 0.0)
        reinit = retry and reinit
        retries = 0
        while True:
            sidecar = self._sidecar
            gen = sidecar.generation
            try:
                self._attach()
                return sidecar.call(method, request, timeout or self.settings.rpc_timeout)
            except RpcError as e:
                if should_retry(e, Kind.UNARY, sidecar, gen) and time.monotonic() < deadline:
                    if retries:  # back off from the second retry on
                        time.sleep(min(1.0, 0.05 * 2 ** (retries - 1), max(0.0, deadline - time.monotonic())))
                    retries += 1
                    sidecar.recover(gen, max(0.1, deadline - time.monotonic()))
                    continue
                action = classify(e.code, Kind.UNARY)
                if action is Action.REINIT and reinit:
                    reinit = False  # once per call
                    self._attach_or_raise(what, e)
                    continue
                if action is Action.ENDED:
                    self._attach_or_raise(what, e)  # raises RunEndedError if it ended
                raise rpc_error(what, e) from None

    def _attach_or_raise(self, what: str, error: RpcError) -> None:
        """Asks the sidecar about the run after ``error``: re-Inits a run it does not
        know, raises RunEndedError for one it ended; raises ``error`` as the call's
        exception when the sidecar cannot be asked."""
        try:
            self._attach(force=True)
        except RpcError:
            raise rpc_error(what, error) from None

    def _attach(self, force: bool = False) -> None:
        """Makes sure the sidecar has the run open, after a reconnect (or now, with
        ``force``): a restarted sidecar recovers an open run from its log (nothing
        to do); one that does not know the run (another data dir) gets an Init with
        resume="allow" and the same id; a run it ended (crashed, killed, ...) is
        reported, and stays ended: RunEndedError."""
        if not force and self._attached_gen == self._sidecar.generation:
            return
        with self._attach_lock:
            sidecar = self._sidecar
            gen = sidecar.generation
            if not force and self._attached_gen == gen:
                return
            if self._ended is not None:
                raise self._ended_error()
            try:
                resp = sidecar.call("GetRun", {"run_id": self.id}, min(30.0, self.settings.rpc_timeout))
                state: Optional[int] = resp.run.state
            except RpcError as e:
                if classify(e.code, Kind.UNARY) is not Action.REINIT:
                    raise
                state = None
            if state is None:
                req = dict(self._init_request, resume="RESUME_ALLOW", id=self.id, project=self.project)
                # The sidecar lost the run (e.g. a new data dir): give it the config.
                req["config"] = self.config.as_dict()
                sidecar.call("Init", req, self.settings.rpc_timeout)
            elif state not in _OPEN_STATES:
                self._mark_ended(_enums.state_name(state))
                raise self._ended_error()
            self._attached_gen = gen

    def _mark_ended(self, state: str) -> None:
        """The sidecar ended the run without this client finishing it: say so, once."""
        if self._ended is not None:
            return
        self._ended = state
        self._warn_once("ended", str(self._ended_error()))

    def _ended_error(self) -> RunEndedError:
        state = self._ended or "unknown"
        why = _ENDED_WHY.get(state)
        return RunEndedError(
            self.id,
            state,
            f"runcore: the sidecar ended run {self.id} as {state}"
            + (f" ({why})" if why else "")
            + "; runcore does not resume it, so rows logged from now on are not recorded. "
            f'runcore.init(id="{self.id}", resume="allow") continues it.',
        )

    def _stop_requested(self) -> None:
        """An operator asked the run to stop (``runcore runs stop``): as W&B does,
        interrupt the training loop (KeyboardInterrupt in the main thread), or only
        warn with ``Settings(on_stop="warn")``; either way say why, once."""
        if self._should_stop or self._finished:
            return
        message = (
            f"runcore: run {self.id} was asked to stop (runcore runs stop {self.id}, or a StopRun call)"
        )
        interrupt = (self.settings.on_stop or "interrupt") == "interrupt"
        if interrupt and callable(signal.getsignal(signal.SIGINT)):
            message += (
                "; raising KeyboardInterrupt in the main thread "
                '(Settings(on_stop="warn") or RUNCORE_ON_STOP=warn only warns)'
            )
        else:
            if interrupt:
                message += "; SIGINT is not handled by Python in this process, so it is not interrupted"
            message += "; run.status().should_stop is True: finish the run when convenient"
        self._warn_once("should-stop", message)
        self._should_stop = True
        if interrupt:
            _interrupt_main()
