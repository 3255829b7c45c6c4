"""Finding the sidecar: connect to ``RUNCORE_ADDRESS``, or spawn a private
``runcore serve`` on a unix socket in a private temporary directory, wait for its
gRPC health check to say SERVING, and reuse it for every later run of the process.

A :class:`Sidecar` is one connection: the native core's ``Channel`` for the run
path, and a grpc channel + stub, made on first use, for the read API and the
artifact calls (so that a run that only logs never imports grpc). When calls fail
because the sidecar went away, :meth:`Sidecar.recover` waits for it to come back
(restarting a sidecar this process spawned, if it died), opens fresh channels and
bumps ``generation`` so every user of the connection knows to re-attach its run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Optional

from ._errors import CommError, SidecarNotFoundError
from ._native import Channel, RpcError
from ._rpc import from_grpc
from ._settings import ENV_ADDRESS, ENV_AUTH_TOKEN, ENV_BIN, ENV_DATA_DIR, Settings

#: The service whose health the client checks.
SERVICE = "runcore.v1.RunService"
#: Longest unix socket path (sun_path is 108 bytes with the NUL on Linux).
_MAX_SOCKET_PATH = 100
#: Seconds a spawned sidecar gets to drain when the process exits.
_STOP_GRACE = 15.0

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Reconnect quickly after a sidecar restart instead of grpc's 1 s..120 s backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]


def grpc_target(address: str) -> str:
    """A runcore address (``unix:///p``, ``tcp://h:p`` or ``h:p``) as a grpc target."""
    if address.startswith("unix://") or address.startswith("unix:"):
        return address
    if address.startswith("tcp://"):
        return address[len("tcp://") :]
    return address


def _log_tail(path: Optional[str], limit: int = 2000) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


class _Spawned:
    """A sidecar process this client started, and how to start it again."""

    def __init__(self, binary: str, tmpdir: str, data_dir: str, use_unix: bool, flags: str) -> None:
        self.binary = binary
        self.tmpdir = tmpdir
        self.data_dir = data_dir
        self.port_file = os.path.join(tmpdir, "address")
        self.log_path = os.path.join(tmpdir, "sidecar.log")
        self.token: Optional[str] = None
        listen = "tcp://127.0.0.1:0"
        if use_unix:
            listen = "unix://" + os.path.join(tmpdir, "sidecar.sock")
        self.args = [binary, "serve", "--listen", listen, "--port-file", self.port_file, "--data-dir", data_dir]
        # Every process of a job spawns its own sidecar on the same data dir (one
        # run per process, grouped): they share it, each run open in one of them.
        if "--shared-data-dir" in flags:
            self.args.append("--shared-data-dir")
        self.parent_pid = "--parent-pid" in flags
        if self.parent_pid:
            self.args += ["--parent-pid", str(os.getpid())]
        if not use_unix and "--auth-token" in flags:
            # Passed in the environment: a flag would show in the process list.
            # secrets is imported here: it loads hashlib (OpenSSL), which a run over
            # a unix socket never needs (issue 20: import + init stay cheap).
            import secrets

            self.token = secrets.token_urlsafe(32)
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self, deadline: float) -> str:
        """Starts the process and waits for its port file; returns the address."""
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        preexec = None
        if not self.parent_pid and sys.platform.startswith("linux"):
            preexec = _die_with_parent()
        log = open(self.log_path, "ab")
        try:
            env = dict(os.environ)
            env.pop(ENV_AUTH_TOKEN, None)
            if self.token:
                env[ENV_AUTH_TOKEN] = self.token
            self.process = subprocess.Popen(
                self.args,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for the training script must not
                # stop the sidecar before the run is finished.
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as e:
            raise SidecarNotFoundError(f"could not start the runcore sidecar {self.binary}: {e}") from e
        finally:
            log.close()
        started = time.monotonic()
        while True:
            try:
                with open(self.port_file) as f:
                    addr = f.read().strip()
                if addr:
                    return addr
            except FileNotFoundError:
                pass
            code = self.process.poll()
            if code is not None:
                raise SidecarNotFoundError(
                    f"the runcore sidecar ({' '.join(self.args)}) exited with code {code} before it "
                    f"was listening; its log {self.log_path} ends with:\n{_log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise SidecarNotFoundError(
                    f"the runcore sidecar ({' '.join(self.args)}) did not write its address to "
                    f"{self.port_file} in time; its log {self.log_path} ends with:\n{_log_tail(self.log_path)}"
                )
            time.sleep(_poll_delay(time.monotonic() - started))

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        p = self.process
        if p is not None and p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            except OSError:
                pass
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _poll_delay(waited: float) -> float:
    """Seconds to sleep before looking for the port file again, having waited
    ``waited``: 1 ms at first, then a tenth of the wait so far, at most 10 ms. A
    sidecar writes the file a few ms after it starts; a fixed 10 ms sleep added up
    to 10 ms to every init (issue 20), this one at most 1 ms or ~10 % of the wait."""
    return min(0.01, max(0.001, waited / 10))


def _die_with_parent() -> Any:
    """A preexec_fn asking Linux to SIGTERM the child when this thread's process
    dies (used until the sidecar has --parent-pid). Only from the main thread: the
    signal follows the thread that forked."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


class Sidecar:
    """A connection to one sidecar."""

    def __init__(self, address: str, origin: str, spawned: Optional[_Spawned] = None) -> None:
        self.address = address
        #: How the address was found, for error messages.
        self.origin = origin
        self.spawned = spawned
        self.owner_pid = os.getpid()
        token = spawned.token if spawned is not None else os.environ.get(ENV_AUTH_TOKEN)
        self._token: Optional[str] = token or None
        #: Bumped by every successful recover(); users re-attach when it changes.
        self.generation = 0
        self._lock = threading.Lock()
        self._closed = False
        self.channel = self._native_channel(address)
        # The read API's grpc channel and stub: made by the first `stub` use.
        self._grpc: Optional[tuple[Any, Any]] = None

    def _native_channel(self, address: str) -> Channel:
        try:
            return Channel(address, self._token)
        except ValueError as e:
            raise SidecarNotFoundError(f"runcore: the sidecar address {address!r} ({self.origin}) is not usable: {e}") from None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The auth token as grpc call metadata (the read API's calls)."""
        if self._token:
            return (("authorization", "Bearer " + self._token),)
        return ()

    @property
    def stub(self) -> Any:
        """The grpc ``RunServiceStub`` of the read API and the artifact calls;
        grpc is imported here, on first use, never on the run path."""
        with self._lock:
            if self._grpc is None:
                import grpc

                from ._proto import runcore_pb2_grpc

                channel = grpc.insecure_channel(grpc_target(self.address), options=_CHANNEL_OPTIONS)
                self._grpc = (channel, runcore_pb2_grpc.RunServiceStub(channel))
            return self._grpc[1]

    def _drop_grpc(self) -> None:
        """Closes the grpc channel (the next `stub` use opens a fresh one)."""
        if self._grpc is not None:
            self._grpc[0].close()
            self._grpc = None

    def call(self, method: str, request: Any, timeout: float) -> Any:
        """One unary call of ``method``: a dict request goes through the native
        channel (response: a namespace), a protobuf message through the grpc stub
        (the artifact calls; response: the message). Raises :class:`RpcError`."""
        if isinstance(request, dict):
            return self.channel.call(method, request, timeout)
        import grpc

        try:
            return getattr(self.stub, method)(request, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_grpc(e) from None
        except ValueError:
            # grpc's "closed channel": a recover() replaced the channel between
            # reading the stub and calling it; retried as a call cancelled by that.
            raise RpcError("CANCELLED", "the channel was replaced by a reconnect") from None

    def describe(self) -> str:
        return f"{self.address} ({self.origin})"

    def _health(self, timeout: float) -> Optional[str]:
        """None when SERVING, else what is wrong."""
        try:
            status = self.channel.health(timeout)
        except RpcError as e:
            return f"{e.code}: {e.details}"
        if status == "SERVING":
            return None
        return "health status " + status

    def wait_healthy(self, deadline: float) -> None:
        delay = 0.02
        while True:
            problem = self._health(timeout=max(0.05, min(2.0, deadline - time.monotonic())))
            if problem is None:
                return
            sp = self.spawned
            if sp is not None and not sp.alive():
                raise CommError(
                    f"the runcore sidecar at {self.describe()} exited; its log {sp.log_path} ends with:\n"
                    f"{_log_tail(sp.log_path)}"
                )
            if time.monotonic() + delay > deadline:
                raise CommError(
                    f"the runcore sidecar at {self.describe()} did not answer its health check "
                    f"({SERVICE}) in time: {problem}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def recover(self, seen_generation: int, timeout: float) -> None:
        """Waits until the sidecar serves again, on fresh channels. A no-op when
        another thread recovered since the caller saw ``seen_generation``."""
        with self._lock:
            if self.generation != seen_generation or self._closed:
                return
            deadline = time.monotonic() + timeout
            sp = self.spawned
            while True:
                if sp is not None and not sp.alive():
                    self.address = sp.start(deadline)
                self.channel = self._native_channel(self.address)
                self._drop_grpc()
                try:
                    self.wait_healthy(deadline)
                    break
                except CommError:
                    # A spawned sidecar killed just as we looked (alive then, dead
                    # now) is started again while there is time.
                    if sp is None or sp.alive() or time.monotonic() >= deadline:
                        raise
            self.generation += 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_grpc()
            if self.spawned is not None:
                self.spawned.stop()


_registry_lock = threading.Lock()
_registry: dict[str, Sidecar] = {}


#: The optional ``serve`` flags the client passes when the binary has them (older
#: sidecars lack some): a spawn assumes all of them, and asks ``serve --help`` only
#: if the sidecar then exits before listening.
_OPTIONAL_FLAGS = " ".join(("--shared-data-dir", "--parent-pid", "--auth-token"))


def _serve_flags(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "serve", "--help"], capture_output=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SidecarNotFoundError(f"could not run {binary} serve --help: {e}") from e
    if out.returncode != 0:
        raise SidecarNotFoundError(
            f"{binary} serve --help failed with code {out.returncode}: "
            f"{out.stderr.decode('utf-8', 'replace').strip()[:500]}; is it the runcore sidecar?"
        )
    return out.stdout.decode("utf-8", "replace")


def _find_binary(settings: Settings) -> tuple[str, str]:
    """The binary to spawn and where it came from; raises naming all that was tried."""
    tried: list[str] = [f"{ENV_ADDRESS} is not set"]
    for origin, candidate in (("settings.binary", settings.binary), (ENV_BIN, os.environ.get(ENV_BIN))):
        if candidate:
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return os.path.abspath(candidate), f"{origin}={candidate}"
            tried.append(f"{origin}={candidate} is not an executable file")
            break
    else:
        found = shutil.which("runcore")
        if found:
            return found, "runcore on PATH"
        tried.append(f"{ENV_BIN} is not set")
        tried.append(f"no 'runcore' on PATH ({os.environ.get('PATH', '')})")
    raise SidecarNotFoundError(
        "no runcore sidecar to log to: "
        + "; ".join(tried)
        + ". Set RUNCORE_ADDRESS to a running sidecar (unix:///path/to.sock or "
        "tcp://127.0.0.1:PORT), or RUNCORE_BIN to the runcore binary (build it with "
        "`cargo build`), or put runcore on PATH."
    )


def _spawn(settings: Settings, base_dir: Optional[str]) -> Sidecar:
    deadline = time.monotonic() + settings.init_timeout
    binary, origin = _find_binary(settings)
    data_dir = settings.data_dir or os.environ.get(ENV_DATA_DIR) or os.path.join(
        base_dir or os.getcwd(), "runcore-data"
    )
    tmpdir = tempfile.mkdtemp(prefix="runcore-")  # mode 0700: only this user
    # Every POSIX system has unix sockets (asking socket.AF_UNIX would import socket).
    use_unix = os.name == "posix" and len(os.path.join(tmpdir, "sidecar.sock")) <= _MAX_SOCKET_PATH
    spawned = _Spawned(binary, tmpdir, os.path.abspath(data_dir), use_unix, _OPTIONAL_FLAGS)
    try:
        try:
            address = spawned.start(deadline)
        except SidecarNotFoundError:
            # Exited before listening: if for want of a flag (an older binary), start
            # it again with those its help lists. Running `serve --help` only here
            # spares every other init a process start (issue 20).
            if spawned.alive():
                raise
            flags = _serve_flags(binary)
            if all(f in flags for f in _OPTIONAL_FLAGS.split()):
                raise
            spawned = _Spawned(binary, tmpdir, spawned.data_dir, use_unix, flags)
            address = spawned.start(deadline)
        sidecar = Sidecar(address, f"spawned from {origin}, data dir {spawned.data_dir}", spawned)
        sidecar.wait_healthy(deadline)
    except BaseException as e:
        spawned.stop()
        if isinstance(e, CommError) and not isinstance(e, SidecarNotFoundError):
            raise SidecarNotFoundError(str(e)) from e
        raise
    return sidecar


def get(settings: Settings, base_dir: Optional[str] = None) -> Sidecar:
    """The sidecar for a new run: the one at settings.address / RUNCORE_ADDRESS, or
    this process's spawned one (started on first use). A connection carries its
    auth token, so one is kept per address and token: after an init refused for a
    missing token, the next init with RUNCORE_AUTH_TOKEN set connects afresh."""
    address = settings.address or os.environ.get(ENV_ADDRESS) or None
    origin = "settings.address" if settings.address else ENV_ADDRESS
    key = "<spawned>"
    if address:
        key = address + "\x00" + os.environ.get(ENV_AUTH_TOKEN, "")
    with _registry_lock:
        existing = _registry.get(key)
        if existing is not None and existing.owner_pid != os.getpid():
            existing = None  # inherited through fork: not ours to use or stop
        if existing is not None:
            sp = existing.spawned
            if sp is not None and not sp.alive():
                existing.recover(existing.generation, settings.init_timeout)
            return existing
        if address:
            sidecar = Sidecar(address, origin)
            try:
                sidecar.wait_healthy(time.monotonic() + settings.init_timeout)
            except CommError as e:
                sidecar.close()
                raise SidecarNotFoundError(
                    f"{e}. {origin} names it; start it (runcore serve --listen {address}) or unset "
                    f"{ENV_ADDRESS} to let runcore spawn its own"
                ) from e
        else:
            sidecar = _spawn(settings, base_dir)
        _registry[key] = sidecar
        return sidecar


def close_all() -> None:
    """Closes every connection and stops the sidecars this process spawned."""
    with _registry_lock:
        sidecars = [s for s in _registry.values() if s.owner_pid == os.getpid()]
        _registry.clear()
    for s in sidecars:
        s.close()
