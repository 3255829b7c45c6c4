"""The public read API, as W&B's ``wandb.Api`` (``wandb.apis.public``): read runs
from the sidecar's local store, edit them, download their files, delete them::

    api = runcore.Api()
    for run in api.runs("me/mnist", filters={"state": "finished"}, order="-created_at"):
        print(run.name, run.summary.get("val/acc"))
    run = api.run("me/mnist/abc123")
    df = run.history(keys=["loss"])                 # a DataFrame with pandas, else a list of dicts
    for row in run.scan_history(keys=["loss"]):     # every row, streamed
        ...
    run.name = "best"; run.tags.append("keep"); run.config["note"] = "x"; run.update()
    run.file("model.pt").download(root="out")

Every call goes to the sidecar over gRPC (GetRun, ListRuns, ScanHistory, ListFiles,
ReadFile, UpdateRun, DeleteRun) and is handled as the client contract says for the
``api`` kind (``_contract``): a sidecar that is unreachable is reconnected to and the
call repeated (a stream goes on after the last row or byte received); any other
failure raises: ``ValueError`` for a bad request, ``CommError`` otherwise.
"""

from __future__ import annotations

import datetime
import html
import importlib
import os
import pathlib
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, TypeVar, Union

from . import _artifacts, _query, _sidecar, _values
from ._contract import Kind
from ._errors import CommError
from ._rpc import RpcError, from_grpc, grpc_error, should_retry
from ._rpc import pb as _pb
from ._run import state_name
from ._run_calls import _OPEN_STATES
from ._settings import Settings

if TYPE_CHECKING:
    from ._proto import runcore_pb2 as pb

T = TypeVar("T")

#: Seconds between state checks of ``Run.wait_until_finished``.
WAIT_POLL = 1.0

# The most rows or files the sidecar sends per page (ScanHistory, ListFiles).
_MAX_PAGE = 10_000


def _iso(t: float) -> str:
    """Unix seconds as W&B's ``created_at`` text (UTC, no zone suffix)."""
    if t <= 0:
        return ""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _api_error(what: str, e: RpcError) -> Exception:
    code, details = e.code, e.details or ""
    if code == "INVALID_ARGUMENT":
        return ValueError(f"runcore: {what}: {details}")
    return CommError(f"runcore: {what}: {code}: {details}")


class Api:
    """W&B's ``wandb.Api`` over a runcore sidecar: ``address`` (``unix:///path`` or
    ``tcp://127.0.0.1:PORT``), else ``$RUNCORE_ADDRESS``, else a private sidecar
    spawned on ``$RUNCORE_DATA_DIR`` (default ``./runcore-data``), as ``init`` does.

    ``overrides`` may hold W&B's ``entity`` and ``project`` defaults for paths
    that leave them out."""

    def __init__(
        self,
        address: Optional[str] = None,
        overrides: Optional[dict[str, Any]] = None,
        timeout: Optional[float] = None,
        *,
        settings: Union[Settings, dict[str, Any], None] = None,
    ) -> None:
        self.settings = Settings.make(settings, address=address, rpc_timeout=timeout)
        self.overrides = dict(overrides or {})
        self._sidecar = _sidecar.get(self.settings)

    @property
    def address(self) -> str:
        return self._sidecar.address

    def flush(self) -> None:
        """W&B clears its cache here; runcore keeps none."""

    # -- calls ---------------------------------------------------------------------

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """Runs ``attempt`` (one or more calls) as the contract's ``api`` kind says:
        reconnect and try again while the sidecar is unreachable, for up to
        settings.reconnect_timeout without progress; raise anything else."""
        deadline = time.monotonic() + self.settings.reconnect_timeout
        retries = 0
        while True:
            sidecar = self._sidecar
            gen = sidecar.generation
            try:
                return attempt()
            except RpcError as e:
                if not should_retry(e, Kind.API, sidecar, gen) or time.monotonic() >= deadline:
                    raise _api_error(what, e) from None
                if retries:
                    time.sleep(min(1.0, 0.05 * 2 ** (retries - 1)))
                retries += 1
                try:
                    sidecar.recover(gen, max(0.1, deadline - time.monotonic()))
                except CommError as ce:
                    raise CommError(f"runcore: {what}: {ce}") from None

    def _call(self, what: str, method: str, request: Any) -> Any:
        def attempt() -> Any:
            sc = self._sidecar
            return sc.call(method, request, self.settings.rpc_timeout)

        return self._retrying(what, attempt)

    # -- runs ----------------------------------------------------------------------

    def _split(self, path: Optional[str], parts: int) -> list[str]:
        """``path`` as [entity, project][, id], filled from overrides."""
        items = [p for p in (path or "").strip("/").split("/") if p] if path else []
        if len(items) > parts:
            raise ValueError(f"path {path!r} has more than {parts} parts; use entity/project" + ("/run_id" if parts == 3 else ""))
        items = [""] * (parts - len(items)) + items
        if not items[0]:
            items[0] = str(self.overrides.get("entity") or "")
        if not items[1]:
            items[1] = str(self.overrides.get("project") or "")
        return items

    def runs(
        self,
        path: Optional[str] = None,
        filters: Optional[dict[str, Any]] = None,
        order: Optional[str] = "-created_at",
        per_page: int = 50,
        include_sweeps: bool = True,
        lazy: bool = True,
    ) -> "Runs":
        """The runs of a project (``entity/project`` or ``project``; every project
        when empty) that match ``filters`` (W&B's MongoDB-style queries, see
        ``runcore._query``), sorted by ``order`` (``-created_at``: newest first;
        ``+`` for ascending; also ``heartbeat_at``, ``name``, ``state``,
        ``config.KEY``, ``summary_metrics.KEY``). An entity in the path matches
        runs of that entity and runs without one (runcore's default)."""
        entity, project = self._split(path, 2)
        resp = self._call("runs", "ListRuns", _pb().ListRunsRequest(project=project))
        runs = [Run(self, info) for info in resp.runs if not entity or info.entity in ("", entity)]
        if _query.needs_details(filters) or _query.needs_details(order or ""):
            for r in runs:
                r.load()
        runs = [r for r in runs if _query.matches(r, filters)]
        return Runs(_query.sort(runs, order))

    def artifact(self, name: str, type: Optional[str] = None) -> _artifacts.Artifact:
        """An artifact version by ``"name:alias"``, ``"name:vN"``, with an optional
        ``entity/project/`` prefix, or a registry path (``"model-registry/NAME:alias"``);
        ``type`` checks its type."""
        return _artifacts.get_artifact(self._sidecar, self.settings, name, type or "")

    def artifact_versions(self, type_name: str, name: str) -> list[_artifacts.Artifact]:
        """Every version of artifact ``name`` of type ``type_name``, oldest first."""
        return _artifacts.artifact_versions(self._sidecar, self.settings, name, type_name)

    def run(self, path: str) -> "Run":
        """The run at ``entity/project/run_id`` (or ``project/run_id``, or the bare
        id: ids are unique in a sidecar's data dir)."""
        entity, project, run_id = self._split(path, 3)
        if not run_id:
            raise ValueError(f"path {path!r} names no run; use entity/project/run_id")
        run = Run(self, _pb().RunInfo(id=run_id))
        run.load()
        if project and run.project != project:
            raise CommError(f"runcore: run {run_id} is in project {run.project!r}, not {project!r}")
        if entity and run.entity not in ("", entity):
            raise CommError(f"runcore: run {run_id} belongs to entity {run.entity!r}, not {entity!r}")
        return run


class Runs(Sequence["Run"]):
    """The runs ``Api.runs`` found: a list that also iterates."""

    def __init__(self, runs: list["Run"]) -> None:
        self._runs = runs

    def __getitem__(self, i: Any) -> Any:
        return self._runs[i]

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator["Run"]:
        return iter(self._runs)

    def __repr__(self) -> str:
        return f"<Runs {len(self._runs)}>"


class Summary(dict[str, Any]):
    """A run's summary: a dict; ``update()`` also persists (as W&B's)."""

    def __init__(self, run: "Run", values: dict[str, Any]) -> None:
        super().__init__(values)
        self._run = run

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._run.update()


class Run:
    """A run as the sidecar has it (W&B's ``wandb.apis.public.Run``). Change
    ``name``, ``tags``, ``notes``, ``group``, ``job_type``, ``config`` or ``summary``
    and call ``update()`` to persist the change (also on an ended run)."""

    def __init__(self, api: Api, info: pb.RunInfo) -> None:
        self._api = api
        self._details: Optional[pb.GetRunResponse] = None
        self._set_info(info)

    def _set_info(self, info: pb.RunInfo) -> None:
        self._info = info
        self.id: str = info.id
        self.name: str = info.name
        self.entity: str = info.entity
        self.project: str = info.project
        self.group: str = info.group
        self.job_type: str = info.job_type
        self.tags: list[str] = list(info.tags)
        self.notes: str = info.notes

    def load(self, force: bool = False) -> "Run":
        """Reads the run (config, summary, system metrics, files) from the sidecar."""
        if self._details is None or force:
            self._set_details(self._api._call("run", "GetRun", _pb().GetRunRequest(run_id=self.id)))
        return self

    load_full_data = load

    def _set_details(self, resp: Any) -> None:
        self._details = resp
        self._set_info(resp.run)
        self._config = _values.map_from_proto(resp.config)
        self._summary = Summary(self, _values.map_from_proto(resp.summary))
        self._saved = (dict(self._config), dict(self._summary))

    def _loaded(self) -> pb.GetRunResponse:
        self.load()
        assert self._details is not None
        return self._details

    # -- attributes -----------------------------------------------------------------

    @property
    def state(self) -> str:
        return state_name(self._info.state)

    @property
    def config(self) -> dict[str, Any]:
        self._loaded()
        return self._config

    @property
    def summary(self) -> Summary:
        self._loaded()
        return self._summary

    @property
    def summary_metrics(self) -> dict[str, Any]:
        return dict(self.summary)

    @property
    def system_metrics(self) -> dict[str, float]:
        """The latest system-metrics sample (``system.*`` keys, ``_runtime``,
        ``_timestamp``); empty before the first."""
        return dict(self._loaded().system_metrics)

    @property
    def created_at(self) -> str:
        return _iso(self._info.start_time)

    @property
    def heartbeat_at(self) -> str:
        return _iso(self._info.last_heartbeat)

    @property
    def _created(self) -> float:
        return float(self._info.start_time)

    @property
    def _heartbeat(self) -> float:
        return float(self._info.last_heartbeat)

    @property
    def storage_id(self) -> str:
        return self.id

    @property
    def lastHistoryStep(self) -> int:  # noqa: N802 - W&B's name
        return int(self._info.step) - 1

    @property
    def path(self) -> list[str]:
        """[entity, project, id] (the entity left out when the run has none)."""
        return [p for p in (self.entity, self.project, self.id) if p]

    @property
    def dir(self) -> str:
        return self._info.dir

    @property
    def url(self) -> str:
        """The run's directory in the sidecar's local store, as a file:// URL."""
        d = pathlib.Path(self._info.dir).parent if self._info.dir else None
        return d.as_uri() if d is not None and d.is_absolute() else ""

    def __repr__(self) -> str:
        return f"<Run {'/'.join(self.path)} ({self.state})>"

    # -- history --------------------------------------------------------------------

    def scan_history(
        self,
        keys: Optional[Sequence[str]] = None,
        page_size: int = 1000,
        min_step: Optional[int] = None,
        max_step: Optional[int] = None,
    ) -> Iterator[dict[str, Any]]:
        """Every history row (with ``_step``, ``_runtime``, ``_timestamp``), in step
        order, streamed from the sidecar ``page_size`` rows at a time: memory stays
        constant however long the run. With ``keys``, only the rows that hold all
        of them, restricted to them. ``max_step`` is exclusive."""
        wanted = _query.as_list(keys)
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        state = {"min_step": min_step}

        def one_stream() -> Iterator[dict[str, Any]]:
            req = _pb().ScanHistoryRequest(run_id=self.id, keys=wanted, page_size=min(page_size, _MAX_PAGE))
            if state["min_step"] is not None:
                req.min_step = int(state["min_step"])
            if max_step is not None:
                req.max_step = int(max_step)
            sc = self._api._sidecar
            call = sc.stub.ScanHistory(req, metadata=sc.metadata)
            try:
                for resp in call:
                    for row in resp.rows:
                        state["min_step"] = int(row.step) + 1
                        yield _values.map_from_proto(row.values)
            finally:
                call.cancel()

        return _resumable(self._api, "scan_history", one_stream)

    def history(
        self,
        samples: int = 500,
        keys: Optional[Sequence[str]] = None,
        x_axis: str = "_step",
        pandas: bool = True,
        stream: str = "default",
    ) -> Any:
        """At most ``samples`` history rows, evenly spread over the run (the last
        one included): a ``pandas.DataFrame`` when ``pandas`` is True and pandas is
        installed, else a list of dicts. With ``keys``, the rows holding all of
        them (and ``x_axis``), restricted to them. ``stream="system"`` reads
        system metrics instead: not supported here (see ``system_metrics``)."""
        if stream != "default":
            raise ValueError('runcore: history(stream="system") is not supported; run.system_metrics has the latest sample')
        wanted = _query.as_list(keys)
        if wanted and x_axis not in wanted and not x_axis.startswith("_"):
            wanted.append(x_axis)
        keep = _query.Decimator(samples)
        for row in self.scan_history(keys=wanted or None):
            keep.add(row)
        rows = keep.rows()
        if pandas:
            try:
                pd = importlib.import_module("pandas")  # optional: not a dependency
            except ImportError:
                return rows
            return pd.DataFrame.from_records(rows)
        return rows

    # -- files ----------------------------------------------------------------------

    def files(self, names: Optional[Sequence[str]] = None, pattern: Optional[str] = None, per_page: int = 50) -> "Files":
        """The run's saved files (its ``files/`` directory): all of them, those
        named in ``names``, or those matching ``pattern`` (SQL LIKE: ``%.json``),
        in name order. Fetched lazily, ``per_page`` names per ListFiles call (10000
        at most), as the iteration goes; ``len()`` and indexing fetch them all."""
        if names and pattern:
            raise ValueError("pass names or pattern, not both")
        if per_page < 1:
            raise ValueError(f"per_page must be >= 1, got {per_page}")
        keep: Optional[Callable[[str], bool]] = None
        if names:
            wanted = set(_query.as_list(names))
            keep = wanted.__contains__
        elif pattern:
            keep = _query.like(pattern)
        return Files(self, per_page, keep)

    def _file_pages(self, per_page: int) -> Iterator[list["File"]]:
        """The run's files, one ListFiles page at a time."""
        token = ""
        while True:
            req = _pb().ListFilesRequest(run_id=self.id, page_size=min(per_page, _MAX_PAGE), page_token=token)
            resp = self._api._call("files", "ListFiles", req)
            yield [File(self, f) for f in resp.files]
            token = resp.next_page_token
            if not token:
                return

    def file(self, name: str) -> "File":
        """The saved file ``name`` (a path under the run's files directory)."""
        for f in self.files(names=[name], per_page=_MAX_PAGE):
            return f
        raise CommError(f"runcore: run {self.id} has no file {name!r}; run.files() lists its files")

    # -- changes --------------------------------------------------------------------

    def update(self) -> None:
        """Persists changes to ``name``, ``tags``, ``notes``, ``group``,
        ``job_type``, ``config`` and ``summary`` (only what changed is sent). Works
        on open and ended runs: the edit is a record in the run's log, and is
        forwarded to the sidecar's backend."""
        # Reading the run for the first time must not undo changes made before.
        mine = {a: getattr(self, a) for a in ("name", "notes", "group", "job_type", "tags")}
        self._loaded()
        for a, v in mine.items():
            setattr(self, a, v)
        info = self._info
        req = _pb().UpdateRunRequest(run_id=self.id)
        for attr in ("name", "notes", "group", "job_type"):
            if getattr(self, attr) != getattr(info, attr):
                setattr(req, attr, str(getattr(self, attr)))
        if list(self.tags) != list(info.tags):
            req.tags.SetInParent()  # set, even to no tags
            req.tags.tags.extend(str(t) for t in self.tags)
        saved_config, saved_summary = self._saved
        for current, saved, values, remove, what in (
            (self._config, saved_config, req.config, req.config_remove, "config"),
            (self._summary, saved_summary, req.summary, req.summary_remove, "summary"),
        ):
            diff = {k: v for k, v in current.items() if k not in saved or saved[k] != v}
            _values.map_to_proto(values, diff, what)
            remove.extend(k for k in saved if k not in current)
        if req == _pb().UpdateRunRequest(run_id=self.id):
            return  # nothing changed
        resp = self._api._call("update", "UpdateRun", req)
        details = _pb().GetRunResponse(run=resp.run, config=resp.config, summary=resp.summary)
        details.system_metrics.update(self._loaded().system_metrics)
        self._set_details(details)

    save = update

    def logged_artifacts(self) -> list[_artifacts.Artifact]:
        """The artifact versions this run logged, as Artifact objects bound to the
        sidecar (``download()``, ``files()``, ``get_entry()``, ``verify()``)."""
        return _artifacts.list_artifacts(self._api._sidecar, self._api.settings, self.id, "logged")

    def used_artifacts(self) -> list[_artifacts.Artifact]:
        """The artifact versions this run used as inputs (``use_artifact``)."""
        return _artifacts.list_artifacts(self._api._sidecar, self._api.settings, self.id, "used")

    def delete(self, delete_artifacts: bool = False) -> None:
        """Removes the run from the sidecar's local store (its backends keep their
        copy). An open run is refused: finish it first. ``delete_artifacts`` is
        accepted and changes nothing: the versions the run logged stay in the
        artifact store (other runs may use them)."""
        self._api._call("delete", "DeleteRun", _pb().DeleteRunRequest(run_id=self.id, delete_artifacts=delete_artifacts))

    def wait_until_finished(self, timeout: Optional[float] = None, poll_interval: float = WAIT_POLL) -> None:
        """Returns once the run has ended (finished, failed, crashed, killed,
        preempted); ``TimeoutError`` after ``timeout`` seconds if given."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.load(force=True)
            if self._info.state not in _OPEN_STATES:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"runcore: run {self.id} is still {self.state} after {timeout} s")
            time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.monotonic())))

    def to_html(self, height: int = 420, hidden: bool = False) -> str:
        """An HTML block showing the run: identity, state, config and summary."""
        def table(values: dict[str, Any]) -> str:
            rows = "".join(
                f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in sorted(values.items())
            )
            return f"<table>{rows}</table>"

        style = f"height:{int(height)}px;overflow:auto;border:none" + (";display:none" if hidden else "")
        title = html.escape(f"{self.name} ({self.id})")
        meta = html.escape(f"{'/'.join(self.path)} · {self.state} · started {self.created_at} UTC")
        return (
            f'<div class="runcore-run" style="{style}"><h3>{title}</h3><p>{meta}</p>'
            f"<h4>Config</h4>{table(self.config)}<h4>Summary</h4>{table(self.summary)}</div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()


def _resumable(api: Api, what: str, one_stream: Callable[[], Iterator[T]]) -> Iterator[T]:
    """Iterates ``one_stream()``, opening it again (it resumes where the last one
    stopped) when the sidecar goes away mid-stream, as the ``api`` kind says."""
    deadline = time.monotonic() + api.settings.reconnect_timeout
    retries = 0
    while True:
        sidecar = api._sidecar
        gen = sidecar.generation
        try:
            for item in one_stream():
                retries = 0
                deadline = time.monotonic() + api.settings.reconnect_timeout
                yield item
            return
        except grpc_error() as ge:
            e = from_grpc(ge)
            if not should_retry(e, Kind.API, sidecar, gen) or time.monotonic() >= deadline:
                raise _api_error(what, e) from None
            if retries:
                time.sleep(min(1.0, 0.05 * 2 ** (retries - 1)))
            retries += 1
            sidecar.recover(gen, max(0.1, deadline - time.monotonic()))


class File:
    """A file of a run's files directory (W&B's ``wandb.apis.public.File``)."""

    def __init__(self, run: Run, info: Any) -> None:
        self._run = run
        self.name: str = info.name
        self.size: int = int(info.size)
        self.updated_at: str = _iso(info.updated_at)

    @property
    def url(self) -> str:
        """The file on the sidecar's host, as a file:// URL."""
        d = self._run.dir
        return pathlib.Path(d, self.name).as_uri() if d and os.path.isabs(d) else ""

    def download(self, root: str = ".", replace: bool = False, exist_ok: bool = False) -> Any:
        """Downloads the file to ``root/name`` (streamed; written under a temporary
        name and renamed, so a failed download leaves nothing half-written) and
        returns it opened for reading. An existing file raises ``ValueError``
        unless ``replace`` (overwrite) or ``exist_ok`` (keep it)."""
        path = os.path.join(root, self.name)
        if os.path.exists(path):
            if exist_ok and not replace:
                return open(path)
            if not replace:
                raise ValueError(f"{path} already exists; pass replace=True to overwrite it or exist_ok=True to keep it")
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.runcore-{os.getpid()}.part"
        try:
            with open(tmp, "wb") as out:
                for chunk in self._chunks():
                    out.write(chunk)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return open(path)

    def _chunks(self) -> Iterator[bytes]:
        run, state = self._run, {"offset": 0}

        def one_stream() -> Iterator[bytes]:
            req = _pb().ReadFileRequest(run_id=run.id, name=self.name, offset=state["offset"])
            sc = run._api._sidecar
            call = sc.stub.ReadFile(req, metadata=sc.metadata)
            try:
                for resp in call:
                    state["offset"] = int(resp.offset) + len(resp.data)
                    yield bytes(resp.data)
            finally:
                call.cancel()

        return _resumable(run._api, f"download {self.name}", one_stream)

    def delete(self) -> None:
        raise CommError("runcore: deleting one file of a run is not supported; run.delete() removes the whole run")

    def __repr__(self) -> str:
        return f"<File {self.name} ({self.size} bytes)>"


class Files(Sequence[File]):
    """Files of a run (W&B's paginator): iterating fetches one page at a time,
    so a run of 100,000 files never needs one huge reply; ``len()`` and indexing
    fetch every page once and keep them."""

    def __init__(self, run: Run, per_page: int, keep: Optional[Callable[[str], bool]]) -> None:
        self._run = run
        self._per_page = per_page
        self._keep = keep
        self._all: Optional[list[File]] = None

    def __iter__(self) -> Iterator[File]:
        if self._all is not None:
            yield from self._all
            return
        for page in self._run._file_pages(self._per_page):
            yield from (f for f in page if self._keep is None or self._keep(f.name))

    def _files(self) -> list[File]:
        if self._all is None:
            self._all = list(iter(self))
        return self._all

    def __getitem__(self, i: Any) -> Any:
        return self._files()[i]

    def __len__(self) -> int:
        return len(self._files())

    def __repr__(self) -> str:
        return f"<Files of run {self._run.id}>"

