"""``Artifact``: W&B's ``wandb.Artifact`` over the sidecar's artifact store.

A draft collects entries (local files by path, references, files written with
``new_file``); ``run.log_artifact`` sends them (``_transfer``): to a sidecar on
this host by path (it reads each file once to hash it, once more only if the
content is new), to a remote one as streamed bytes with their SHA-256. The logged
(or used) artifact knows its sidecar and reads its manifest and files from it:
``download`` places the files under a directory (hard links to the store where
possible, read-only), ``verify`` checks a directory against the manifest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import tempfile
import time
import urllib.parse
import warnings
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Union

from . import _active_run, _values
from ._contract import Kind
from ._errors import RuncoreWarning, UsageError
from ._rpc import RpcError, from_grpc, grpc_error, rpc_error, should_retry
from ._rpc import pb as _pb

if TYPE_CHECKING:
    from ._proto import runcore_pb2 as pb
    from ._settings import Settings
    from ._sidecar import Sidecar

StrPath = Union[str, "os.PathLike[str]"]
#: Bytes per message when a file's bytes are streamed to or from the sidecar.
CHUNK = 1 << 20
_REF_SCHEMES = ("file", "s3", "gs", "http", "https")


def _is_local(address: str) -> bool:
    """Whether the sidecar shares this host's files (a unix socket or loopback)."""
    if address.startswith("unix:"):
        return True
    host = address[len("tcp://") :] if address.startswith("tcp://") else address
    host = host.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1", "0.0.0.0")


class _Client:
    """How a logged or used artifact reaches its sidecar."""

    def __init__(self, sidecar: "Sidecar", settings: "Settings") -> None:
        self.sidecar = sidecar
        self.settings = settings

    @property
    def local(self) -> bool:
        return _is_local(self.sidecar.address)

    def call(self, what: str, method: str, request: Any) -> Any:
        """A unary call, retried after a reconnect while the sidecar is away."""
        deadline = time.monotonic() + self.settings.reconnect_timeout
        while True:
            sc = self.sidecar
            gen = sc.generation
            try:
                return sc.call(method, request, self.settings.rpc_timeout)
            except RpcError as e:
                if should_retry(e, Kind.UNARY, sc, gen) and time.monotonic() < deadline:
                    sc.recover(gen, max(0.1, deadline - time.monotonic()))
                    continue
                raise rpc_error(what, e) from None

    def stream(self, what: str, method: str, request: Any) -> Iterator[Any]:
        """The messages of a server-streaming call."""
        sc = self.sidecar
        try:
            yield from getattr(sc.stub, method)(request, timeout=self.settings.rpc_timeout, metadata=sc.metadata)
        except grpc_error() as e:
            raise rpc_error(what, from_grpc(e)) from None


@dataclasses.dataclass
class ArtifactManifestEntry:
    """One file of an artifact, as W&B's ``ArtifactManifestEntry``."""

    #: Path inside the artifact.
    path: str
    #: Base64 MD5 of the content (W&B's digest); for an unread reference, the reference.
    digest: Optional[str] = None
    size: Optional[int] = None
    #: A reference (``s3://``, ``file://``...) kept as a URI.
    ref: Optional[str] = None
    #: Hex SHA-256 of the content (the store's key); None for an unread reference.
    sha256: Optional[str] = None
    #: The local file a draft entry will be read from.
    local_path: Optional[str] = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    _artifact: Optional["Artifact"] = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path

    def download(self, root: Optional[StrPath] = None, skip_cache: Optional[bool] = None) -> str:
        """Places this file under ``root`` (the artifact's default directory when
        not given); returns its path."""
        if self._artifact is None:
            raise UsageError("runcore: this entry belongs to no logged artifact")
        where = self._artifact.download(root, skip_cache=skip_cache, path_prefix=self.path)
        return os.path.join(where, self.path)

    def ref_target(self) -> str:
        if self.ref is None:
            raise ValueError(f"{self.path} is not a reference")
        return self.ref


def _entry_of(f: pb.ArtifactFile, artifact: "Artifact") -> ArtifactManifestEntry:
    return ArtifactManifestEntry(
        path=f.path,
        digest=f.md5 or None,
        size=int(f.size),
        ref=f.ref or None,
        sha256=f.sha256 or None,
        extra=_values.map_from_proto(f.extra),
        _artifact=artifact,
    )


def _sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class Artifact:
    """A versioned set of files, as W&B's ``wandb.Artifact``: build a draft with
    ``add_file``/``add_dir``/``add_reference``/``new_file`` and log it with
    ``run.log_artifact``; ``run.use_artifact("name:alias")`` gives a logged one,
    whose ``download()`` places its files from the store."""

    def __init__(
        self,
        name: str,
        type: str,
        description: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        incremental: bool = False,
        use_as: Optional[str] = None,
    ) -> None:
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"artifact name {name!r} must be a non-empty str without ':' (aliases go in `aliases`)")
        if not isinstance(type, str) or not type:
            raise ValueError("artifact type must be a non-empty str, e.g. 'dataset' or 'model'")
        self._name = name
        self.type = type
        self.description = description
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.aliases: list[str] = []
        self._saved_aliases: list[str] = []
        self.incremental = incremental
        self._entries: dict[str, ArtifactManifestEntry] = {}
        self._removed: list[str] = []
        self._base: Optional[str] = None
        self._version: Optional[str] = None
        self._digest: Optional[str] = None
        self._size = 0
        self._file_count = 0
        self._logged_by: list[str] = []
        self._used_by: list[str] = []
        self._created_at = 0.0
        self._files_loaded = False
        self._client: Optional[_Client] = None
        self._staging: Optional[str] = None
        #: Set while distributed writers (upsert_artifact) fill a shared draft.
        self.distributed_id: Optional[str] = None

    # -- identity -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The name, with ``:version`` once the artifact is logged (as W&B)."""
        return f"{self._name}:{self._version}" if self._version else self._name

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def collection_name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        """``v0``, ``v1``, ...; raises for a draft, as W&B does."""
        if self._version is None:
            raise UsageError(f"runcore: artifact {self._name!r} is a draft; log it first to give it a version")
        return self._version

    @property
    def digest(self) -> str:
        """The store's digest of the content (hex SHA-256 over the sorted manifest)."""
        if self._digest is None:
            raise UsageError(f"runcore: artifact {self._name!r} is a draft; its digest is known once it is logged")
        return self._digest

    @property
    def state(self) -> str:
        return "COMMITTED" if self._version else ("PENDING" if self._client else "DRAFT")

    @property
    def size(self) -> int:
        if self._version is None:
            return sum(e.size or 0 for e in self._entries.values())
        return self._size

    @property
    def file_count(self) -> int:
        return self._file_count if self._version else len(self._entries)

    @property
    def created_at(self) -> float:
        return self._created_at

    @property
    def manifest(self) -> dict[str, ArtifactManifestEntry]:
        self._load_files()
        return dict(self._entries)

    def is_draft(self) -> bool:
        return self._version is None

    def logged_by(self) -> list[str]:
        """Paths (entity/project/id) of the runs that logged this content."""
        return list(self._logged_by)

    def used_by(self) -> list[str]:
        """Paths of the runs that used this version."""
        return list(self._used_by)

    def __repr__(self) -> str:
        return f"<runcore.Artifact {self.name} type={self.type} files={self.file_count}>"

    # -- building a draft ---------------------------------------------------------------

    def _ensure_draft(self, what: str) -> None:
        if self._version is not None:
            raise UsageError(
                f"runcore: artifact {self.name} is logged and cannot change; "
                f"use artifact.new_draft() to {what} in a new version"
            )

    def _add(self, entry: ArtifactManifestEntry, overwrite: bool) -> ArtifactManifestEntry:
        path = entry.path
        parts = path.split("/")
        if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"artifact path {path!r} must be relative without '.' or '..' parts")
        if path in self._entries and not overwrite:
            raise ValueError(f"the artifact already has {path!r}; pass overwrite=True to replace it")
        entry._artifact = self
        self._entries[path] = entry
        if path in self._removed:
            self._removed.remove(path)
        return entry

    def add_file(
        self,
        local_path: StrPath,
        name: Optional[str] = None,
        is_tmp: Optional[bool] = False,
        skip_cache: Optional[bool] = False,
        policy: Optional[str] = "mutable",
        overwrite: bool = False,
    ) -> ArtifactManifestEntry:
        """Adds a file (read when the artifact is logged), as ``name`` (default: its
        file name)."""
        self._ensure_draft("add files")
        src = os.path.abspath(os.fspath(local_path))
        if not os.path.isfile(src):
            raise ValueError(f"add_file: {src} is not a file")
        path = (name or os.path.basename(src)).replace(os.sep, "/")
        size = os.path.getsize(src)
        return self._add(ArtifactManifestEntry(path=path, size=size, local_path=src), overwrite)

    def add_dir(
        self,
        local_path: StrPath,
        name: Optional[str] = None,
        skip_cache: Optional[bool] = False,
        policy: Optional[str] = "mutable",
        merge: bool = False,
    ) -> None:
        """Adds every file under a directory, keeping its layout (under ``name``)."""
        self._ensure_draft("add files")
        root = os.path.abspath(os.fspath(local_path))
        if not os.path.isdir(root):
            raise ValueError(f"add_dir: {root} is not a directory")
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                full = os.path.join(dirpath, f)
                if not os.path.isfile(full):
                    continue
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                self.add_file(full, f"{name.rstrip('/')}/{rel}" if name else rel, overwrite=merge)

    def add_reference(
        self,
        uri: Union[str, "os.PathLike[str]"],
        name: Optional[StrPath] = None,
        checksum: bool = True,
        max_objects: Optional[int] = None,
    ) -> list[ArtifactManifestEntry]:
        """Adds a reference, kept as a URI: ``file://`` (a directory adds each file
        under it; the sidecar reads them for their digest, nothing is stored),
        ``s3://``, ``gs://``, ``http(s)://`` (not fetched)."""
        self._ensure_draft("add references")
        uri = os.fspath(uri)
        scheme = urllib.parse.urlparse(uri).scheme
        if scheme not in _REF_SCHEMES:
            raise ValueError(f"add_reference: {uri!r} must be a file://, s3://, gs://, http:// or https:// URI")
        base = os.fspath(name) if name is not None else None
        if scheme != "file":
            path = base or (uri.rstrip("/").rsplit("/", 1)[-1] or "reference")
            return [self._add(ArtifactManifestEntry(path=path, ref=uri), overwrite=True)]
        local = urllib.parse.unquote(urllib.parse.urlparse(uri).path)
        if os.path.isdir(local):
            out = []
            for dirpath, _, files in os.walk(local):
                for f in sorted(files):
                    full = os.path.join(dirpath, f)
                    rel = os.path.relpath(full, local).replace(os.sep, "/")
                    path = f"{base.rstrip('/')}/{rel}" if base else rel
                    out.append(self._add(ArtifactManifestEntry(path=path, ref=pathlib.Path(full).as_uri()), True))
                    if max_objects is not None and len(out) >= max_objects:
                        return out
            return out
        if not os.path.isfile(local):
            raise ValueError(f"add_reference: {local} does not exist")
        path = base or os.path.basename(local)
        entry = ArtifactManifestEntry(path=path, ref=pathlib.Path(local).as_uri(), size=os.path.getsize(local))
        return [self._add(entry, overwrite=True)]

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "x", encoding: Optional[str] = None) -> Iterator[IO[Any]]:
        """Opens a new file to write into the artifact as ``name``; it is added when
        the ``with`` block ends."""
        self._ensure_draft("add files")
        if self._staging is None:
            self._staging = tempfile.mkdtemp(prefix="runcore-artifact-", dir=_values.staging_dir())
        local = os.path.join(self._staging, name)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, mode, encoding=encoding) as f:
            yield f
        self.add_file(local, name)

    def add(self, obj: Any, name: str, overwrite: bool = False) -> ArtifactManifestEntry:
        """Adds a runcore data type (a ``Table``...) as ``name`` (W&B's ``add``)."""
        writer: Optional[Callable[[str], str]] = getattr(obj, "_write_to", None)
        if writer is None:
            raise ValueError(f"add: cannot add a {type(obj).__name__}; use add_file for files")
        if self._staging is None:
            self._staging = tempfile.mkdtemp(prefix="runcore-artifact-", dir=_values.staging_dir())
        local = writer(os.path.join(self._staging, name))
        rel = os.path.relpath(local, self._staging).replace(os.sep, "/")
        return self.add_file(local, rel, overwrite=overwrite)

    def remove(self, item: Union[str, ArtifactManifestEntry]) -> None:
        """Removes an entry (of this draft, or of the version it is a draft of)."""
        self._ensure_draft("remove files")
        path = item.path if isinstance(item, ArtifactManifestEntry) else str(item)
        if path not in self._entries:
            raise FileNotFoundError(f"the artifact has no {path!r}")
        del self._entries[path]
        if self._base is not None:
            self._removed.append(path)

    def new_draft(self) -> "Artifact":
        """A draft of a new version starting from this one's files."""
        if self._version is None:
            raise UsageError("runcore: new_draft() is for a logged artifact")
        self._load_files()
        draft = Artifact(self._name, self.type, self.description, self.metadata)
        draft._base = f"{self._name}:{self._version}"
        for path, e in self._entries.items():
            draft._entries[path] = dataclasses.replace(e, local_path=None, _artifact=draft)
        return draft

    # -- a logged artifact ----------------------------------------------------------------

    def _fill(self, a: pb.Artifact, client: Optional[_Client]) -> "Artifact":
        """Takes what the sidecar says of a version."""
        self._name, self.type = a.name, a.type
        self._version = a.version or None
        self._digest = a.digest or None
        self.aliases = list(a.aliases)
        self._saved_aliases = list(a.aliases)
        self.description = a.description or None
        self.metadata = _values.map_from_proto(a.metadata)
        self._size, self._file_count = int(a.size), int(a.file_count)
        self._logged_by, self._used_by = list(a.logged_by), list(a.used_by)
        self._created_at = float(a.created_at)
        self.distributed_id = a.distributed_id or None
        if client is not None:
            self._client = client
        if a.files:
            self._entries = {f.path: _entry_of(f, self) for f in a.files}
            self._files_loaded = True
        elif self._version:
            self._files_loaded = False
        return self

    @classmethod
    def _from_proto(cls, a: pb.Artifact, client: Optional[_Client]) -> "Artifact":
        art = cls(a.name, a.type)
        return art._fill(a, client)

    def _need_client(self, what: str) -> _Client:
        if self._client is None or self._version is None:
            raise UsageError(f"runcore: {what}: artifact {self.name} is a draft; log it (or use a logged one) first")
        return self._client

    def _load_files(self) -> None:
        if self._version is None or self._files_loaded:
            return
        c = self._need_client("files")
        req = _pb().GetArtifactRequest(name=f"{self._name}:{self._version}", include_files=True)
        a = c.call("get artifact", "GetArtifact", req).artifact
        self._entries = {f.path: _entry_of(f, self) for f in a.files}
        self._files_loaded = True

    def files(self, names: Optional[list[str]] = None, per_page: int = 50) -> list[ArtifactManifestEntry]:
        """The artifact's entries (only ``names`` when given)."""
        self._load_files()
        entries = list(self._entries.values())
        return [e for e in entries if e.path in names] if names else entries

    def get_entry(self, name: StrPath) -> ArtifactManifestEntry:
        self._load_files()
        key = os.fspath(name)
        if key not in self._entries:
            raise KeyError(f"artifact {self.name} has no entry {key!r}")
        return self._entries[key]

    def get_path(self, name: StrPath) -> ArtifactManifestEntry:
        """Deprecated alias of ``get_entry`` (as in W&B)."""
        return self.get_entry(name)

    def _default_root(self) -> str:
        return os.path.join(os.getcwd(), "artifacts", f"{self._name}:{self._version}")

    def download(
        self,
        root: Optional[StrPath] = None,
        allow_missing_references: bool = False,
        skip_cache: Optional[bool] = None,
        path_prefix: Optional[StrPath] = None,
        multipart: Optional[bool] = None,
    ) -> str:
        """Places the files under ``root`` (default ``./artifacts/<name>:<version>``)
        and returns it. From a sidecar on this host they are hard links to the
        store where possible (read-only; ``skip_cache=True`` copies instead);
        references other than ``file://`` are not fetched (a warning names them)."""
        c = self._need_client("download")
        where = os.path.abspath(os.fspath(root)) if root is not None else self._default_root()
        req = _pb().DownloadArtifactRequest(
            name=f"{self._name}:{self._version}",
            copy=bool(skip_cache),
            paths=[os.fspath(path_prefix)] if path_prefix is not None else [],
        )
        skipped: list[str] = []
        if c.local:
            req.root = where
            for m in c.stream("download", "DownloadArtifact", req):
                if m.skipped_ref:
                    skipped.append(m.skipped_ref)
        else:
            skipped = _receive(c, req, where)
        if skipped and not allow_missing_references:
            warnings.warn(
                f"runcore: artifact {self.name}: {len(skipped)} reference(s) not fetched "
                f"(runcore keeps them as URIs), e.g. {skipped[0]}",
                RuncoreWarning,
                stacklevel=2,
            )
        return where

    def checkout(self, root: Optional[StrPath] = None) -> str:
        """Downloads into ``root`` and removes files there that the artifact lacks."""
        where = self.download(root)
        self._load_files()
        for dirpath, _, files in os.walk(where):
            for f in files:
                rel = os.path.relpath(os.path.join(dirpath, f), where).replace(os.sep, "/")
                if rel not in self._entries:
                    os.remove(os.path.join(dirpath, f))
        return where

    def verify(self, root: Optional[StrPath] = None) -> None:
        """Checks that ``root`` (default: where ``download`` puts files) holds
        exactly the artifact's files with their content; raises ValueError naming
        the first difference. References are not checked."""
        self._load_files()
        where = os.path.abspath(os.fspath(root)) if root is not None else self._default_root()
        expected = {p: e for p, e in self._entries.items() if e.ref is None or e.ref.startswith("file://")}
        found = set()
        for dirpath, _, files in os.walk(where):
            for f in files:
                found.add(os.path.relpath(os.path.join(dirpath, f), where).replace(os.sep, "/"))
        for path, e in sorted(expected.items()):
            local = os.path.join(where, path)
            if not os.path.isfile(local):
                raise ValueError(f"verify: {path} is missing from {where}")
            if e.sha256 and _sha256_of(local) != e.sha256:
                raise ValueError(f"verify: {path} in {where} does not match the artifact (its SHA-256 differs)")
        extra = sorted(found - set(self._entries))
        if extra:
            raise ValueError(f"verify: {where} has files the artifact lacks: {extra[:5]}")

    def wait(self, timeout: Optional[int] = None) -> "Artifact":
        """Logging is synchronous here: the artifact is committed already."""
        return self

    def save(self) -> None:
        """Logs a draft with the active run; for a logged artifact, sends changed
        ``aliases``."""
        if self._version is None:
            run = _active_run.get()
            if run is None:
                raise UsageError("runcore: artifact.save() of a draft needs a run: call runcore.init() first")
            run.log_artifact(self)
            return
        c = self._need_client("save")
        add = [a for a in self.aliases if a not in self._saved_aliases]
        remove = [a for a in self._saved_aliases if a not in self.aliases and a != "latest"]
        if not add and not remove:
            return
        run = _active_run.get()
        req = _pb().SetArtifactAliasesRequest(
            name=f"{self._name}:{self._version}",
            add=[a for a in add if a != "latest"],
            remove=remove,
            run_id=run.id if run is not None else "",
        )
        self._fill(c.call("save aliases", "SetArtifactAliases", req).artifact, None)

    def link(self, target_path: str, aliases: Optional[list[str]] = None) -> "Artifact":
        """Links this version into a registry collection (``model-registry/NAME``)."""
        run = _active_run.get()
        if run is not None:
            run.link_artifact(self, target_path, aliases)
            return self
        c = self._need_client("link")
        req = _pb().LinkArtifactRequest(name=f"{self._name}:{self._version}", target_path=target_path)
        req.aliases.extend(aliases or [])
        c.call("link artifact", "LinkArtifact", req)
        return self


def list_artifacts(
    sidecar: "Sidecar", settings: "Settings", run_id: str, direction: str = ""
) -> list[Artifact]:
    """The versions run ``run_id`` logged (``direction="logged"``), used
    (``"used"``) or either (``""``), as Artifact objects bound to the sidecar: what
    the public API's ``Run.logged_artifacts()`` / ``used_artifacts()`` return."""
    client = _Client(sidecar, settings)
    req = _pb().ListArtifactsRequest(run_id=run_id, direction=direction)
    resp = client.call("list artifacts", "ListArtifacts", req)
    return [Artifact._from_proto(a, client) for a in resp.artifacts]


def get_artifact(sidecar: "Sidecar", settings: "Settings", name: str, type: str = "") -> Artifact:
    """The version ``name`` names ("name:alias", "name:vN", a registry path), of
    ``type`` when given, bound to the sidecar: the public API's ``Api.artifact``."""
    client = _Client(sidecar, settings)
    req = _pb().GetArtifactRequest(name=name, type=type)
    return Artifact._from_proto(client.call("get artifact", "GetArtifact", req).artifact, client)


def artifact_versions(sidecar: "Sidecar", settings: "Settings", name: str, type: str = "") -> list[Artifact]:
    """Every version of artifact ``name`` (of ``type`` when given), oldest first:
    the public API's ``Api.artifact_versions``."""
    client = _Client(sidecar, settings)
    req = _pb().ListArtifactsRequest(name=name, type=type)
    resp = client.call("list artifacts", "ListArtifacts", req)
    return [Artifact._from_proto(a, client) for a in resp.artifacts]


def _receive(c: _Client, req: pb.DownloadArtifactRequest, where: str) -> list[str]:
    """Writes a version's streamed files under ``where``; returns references not
    fetched."""
    skipped: list[str] = []
    out: Optional[IO[bytes]] = None
    tmp = ""
    for m in c.stream("download", "DownloadArtifact", req):
        if m.skipped_ref:
            skipped.append(m.skipped_ref)
            continue
        target = os.path.join(where, m.path)
        if out is None:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.part"
            out = open(tmp, "wb")
        out.write(m.data)
        if m.last:
            out.close()
            out = None
            os.replace(tmp, target)
    if out is not None:
        out.close()
    return skipped


def _requests(draft: str, art: Artifact, local: bool) -> Iterator[pb.AddArtifactFilesRequest]:
    """The AddArtifactFiles messages of a draft's entries."""
    for path in art._removed:
        yield _pb().AddArtifactFilesRequest(draft_id=draft, remove=path)
    for path, e in art._entries.items():
        if e.ref is not None:
            f = _pb().ArtifactFile(path=path, ref=e.ref, size=e.size or 0, sha256=e.sha256 or "")
            _values.map_to_proto(f.extra, e.extra, "extra")
            yield _pb().AddArtifactFilesRequest(draft_id=draft, reference=f)
        elif e.local_path is None:
            continue  # a base version's file, kept by the sidecar
        elif local:
            src = _pb().ArtifactFileSource(path=path, source=e.local_path)
            yield _pb().AddArtifactFilesRequest(draft_id=draft, file=src)
        else:
            yield from _chunks(draft, path, e.local_path)


def _chunks(draft: str, path: str, local: str) -> Iterator[pb.AddArtifactFilesRequest]:
    """A file's bytes in pieces, its SHA-256 on the last."""
    h = hashlib.sha256()
    with open(local, "rb") as f:
        block = f.read(CHUNK)
        while True:
            h.update(block)
            nxt = f.read(CHUNK)
            last = not nxt
            chunk = _pb().ArtifactChunk(path=path, data=block, last=last, sha256=h.hexdigest() if last else "")
            yield _pb().AddArtifactFilesRequest(draft_id=draft, chunk=chunk)
            if last:
                return
            block = nxt


def send_files(sidecar: "Sidecar", settings: "Settings", draft: str, art: Artifact) -> pb.AddArtifactFilesResponse:
    """Streams a draft's entries into sidecar draft ``draft``."""
    reqs = _requests(draft, art, _is_local(sidecar.address))
    resp: pb.AddArtifactFilesResponse = sidecar.stub.AddArtifactFiles(
        reqs, timeout=settings.rpc_timeout, metadata=sidecar.metadata
    )
    return resp
