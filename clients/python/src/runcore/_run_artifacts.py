"""The artifact methods of ``Run`` (W&B's ``log_artifact``, ``use_artifact``,
``link_artifact``, ``upsert_artifact``, ``finish_artifact``, ``log_model``,
``use_model``, ``link_model``), as a mixin.

Logging is CreateArtifact, AddArtifactFiles (``_artifacts.send_files``) and
CommitArtifact, after the rows logged before it are acknowledged. These calls
go through grpc, the generated protobuf messages and ``_artifacts`` (all imported
on first use: a run that logs no artifact never loads them, issue 20). A sidecar
that goes away in the middle loses the draft (never a half version): the whole
log is done again after the reconnect. For these calls NOT_FOUND names a missing
artifact (or run) and is raised, never answered by re-Initing the run.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Optional, Union

from ._contract import Kind
from ._rpc import from_grpc, rpc_error, should_retry
from ._run_calls import CallMethods
from . import _values

if TYPE_CHECKING:
    from ._artifacts import Artifact, _Client

StrPath = Union[str, "os.PathLike[str]"]
_MODEL_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: Where link_model links (W&B's model registry project).
MODEL_REGISTRY = "model-registry"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "artifact"


class ArtifactMethods(CallMethods):
    """Mixed into ``Run``; uses its id, sidecar and settings, and makes its calls
    through ``CallMethods._call``."""

    if TYPE_CHECKING:

        @property
        def group(self) -> str: ...

        def _flush(self) -> None: ...

        def _ensure_open(self, what: str) -> None: ...

    # -- helpers -----------------------------------------------------------------------

    def _artifact_client(self) -> _Client:
        from ._artifacts import _Client

        return _Client(self._sidecar, self.settings)

    def _as_artifact(self, artifact_or_path: Union[Artifact, StrPath], name: Optional[str], type: Optional[str]) -> Artifact:
        """An Artifact, or a draft made of a path (file, directory or reference)."""
        from ._artifacts import Artifact

        if isinstance(artifact_or_path, Artifact):
            return artifact_or_path
        path = os.fspath(artifact_or_path)
        base = path.rstrip("/").rsplit("/", 1)[-1]
        art = Artifact(name or f"run-{self.id}-{_safe(base)}", type or "unspecified")
        if "://" in path:
            art.add_reference(path)
        elif os.path.isdir(path):
            art.add_dir(path)
        elif os.path.isfile(path):
            art.add_file(path)
        else:
            raise ValueError(f"{path} is neither a file, a directory nor a reference URI")
        return art

    def _log(
        self,
        art: Artifact,
        aliases: Optional[list[str]],
        distributed_id: str,
        commit: bool,
    ) -> Artifact:
        """Creates a sidecar draft, sends the entries, and commits (unless a
        distributed writer only adds)."""
        import grpc

        from ._artifacts import send_files
        from ._proto import runcore_pb2 as pb

        self._ensure_open("log_artifact")
        self._flush()
        if ":" in art._name:
            raise ValueError(f"artifact name {art._name!r} holds ':'; give aliases in `aliases`")
        req = pb.CreateArtifactRequest(
            run_id=self.id,
            name=art._name,
            type=art.type,
            description=art.description or "",
            aliases=[a for a in (aliases or art.aliases or []) if a != "latest"],
            distributed_id=distributed_id,
            base=art._base or "",
        )
        _values.map_to_proto(req.metadata, art.metadata, "metadata")
        deadline = time.monotonic() + self.settings.reconnect_timeout
        while True:
            draft = self._call("log_artifact", "CreateArtifact", req, reinit=False).draft_id
            sc = self._sidecar
            gen = sc.generation
            try:
                send_files(sc, self.settings, draft, art)
            except grpc.RpcError as ge:
                e = from_grpc(ge)
                if should_retry(e, Kind.UNARY, sc, gen) and time.monotonic() < deadline:
                    sc.recover(gen, max(0.1, deadline - time.monotonic()))
                    continue  # the draft died with the sidecar: start again
                raise rpc_error("log_artifact", e) from None
            break
        client = self._artifact_client()
        if not commit:
            art._client = client
            art.distributed_id = distributed_id
            return art
        done = self._call("log_artifact", "CommitArtifact", pb.CommitArtifactRequest(draft_id=draft), reinit=False)
        art._removed = []
        return art._fill(done.artifact, client)

    # -- W&B's Run methods --------------------------------------------------------------

    def log_artifact(
        self,
        artifact_or_path: Union[Artifact, StrPath],
        name: Optional[str] = None,
        type: Optional[str] = None,
        aliases: Optional[list[str]] = None,
        tags: Optional[list[str]] = None,
    ) -> Artifact:
        """Logs an artifact as an output of the run (a new version, or the existing
        one with the same content) and returns it, committed."""
        return self._log(self._as_artifact(artifact_or_path, name, type), aliases, "", commit=True)

    def upsert_artifact(
        self,
        artifact_or_path: Union[Artifact, StrPath],
        name: Optional[str] = None,
        type: Optional[str] = None,
        aliases: Optional[list[str]] = None,
        distributed_id: Optional[str] = None,
    ) -> Artifact:
        """Adds to an artifact that several processes write (same name and
        ``distributed_id``, default the run's group); ``finish_artifact`` commits."""
        dist = self._distributed(distributed_id)
        return self._log(self._as_artifact(artifact_or_path, name, type), aliases, dist, commit=False)

    def finish_artifact(
        self,
        artifact_or_path: Union[Artifact, StrPath],
        name: Optional[str] = None,
        type: Optional[str] = None,
        aliases: Optional[list[str]] = None,
        distributed_id: Optional[str] = None,
    ) -> Artifact:
        """Adds this process's files to the distributed artifact and commits it."""
        dist = self._distributed(distributed_id)
        return self._log(self._as_artifact(artifact_or_path, name, type), aliases, dist, commit=True)

    def _distributed(self, distributed_id: Optional[str]) -> str:
        dist = distributed_id or self.group
        if not dist:
            raise ValueError("upsert_artifact/finish_artifact need a distributed_id, or a run group to use as one")
        return dist

    def use_artifact(
        self,
        artifact_or_name: Union[str, Artifact],
        type: Optional[str] = None,
        aliases: Optional[list[str]] = None,
        use_as: Optional[str] = None,
    ) -> Artifact:
        """Declares a version an input of the run ("name:alias", "name:vN",
        "entity/project/name:alias", or a registry path
        "model-registry/NAME:alias") and returns it; ``download()`` gets its
        files."""
        from ._artifacts import Artifact
        from ._proto import runcore_pb2 as pb

        self._ensure_open("use_artifact")
        if isinstance(artifact_or_name, Artifact):
            art = artifact_or_name
            if art.is_draft():
                self.log_artifact(art)
            ref = f"{art._name}:{art._version}"
        else:
            ref = str(artifact_or_name)
        req = pb.UseArtifactRequest(run_id=self.id, name=ref, type=type or "")
        got = self._call("use_artifact", "UseArtifact", req, reinit=False).artifact
        client = self._artifact_client()
        art = Artifact._from_proto(got, client)
        if aliases:
            sreq = pb.SetArtifactAliasesRequest(
                name=f"{art._name}:{art._version}", add=[a for a in aliases if a != "latest"], run_id=self.id
            )
            art._fill(self._call("use_artifact", "SetArtifactAliases", sreq, reinit=False).artifact, client)
        return art

    def link_artifact(
        self, artifact: Artifact, target_path: str, aliases: Optional[list[str]] = None
    ) -> Optional[Artifact]:
        """Links a logged version into a registry collection (``"{collection}"``,
        ``"{project}/{collection}"`` or ``"{entity}/{project}/{collection}"``)."""
        from ._proto import runcore_pb2 as pb

        self._ensure_open("link_artifact")
        if artifact.is_draft():
            self.log_artifact(artifact)
        req = pb.LinkArtifactRequest(
            run_id=self.id,
            name=f"{artifact._name}:{artifact._version}",
            target_path=target_path,
            aliases=[a for a in (aliases or []) if a != "latest"],
        )
        self._call("link_artifact", "LinkArtifact", req, reinit=False)
        return artifact

    def _model_artifact(self, path: StrPath, name: Optional[str]) -> Artifact:
        if name is not None and not _MODEL_NAME.fullmatch(name):
            raise ValueError(f"model name {name!r} may hold only letters, digits, '_' and '-'")
        return self._as_artifact(path, name, "model")

    def log_model(self, path: StrPath, name: Optional[str] = None, aliases: Optional[list[str]] = None) -> None:
        """Logs the files at ``path`` as a ``model`` artifact."""
        self._log(self._model_artifact(path, name), aliases, "", commit=True)

    def use_model(self, name: str) -> str:
        """Uses a model artifact and downloads it; returns the directory."""
        art = self.use_artifact(name)
        if "model" not in art.type:
            raise AssertionError(f"artifact {art.name} has type {art.type!r}, not a model type")
        return art.download()

    def link_model(
        self,
        path: StrPath,
        registered_model_name: str,
        name: Optional[str] = None,
        aliases: Optional[list[str]] = None,
    ) -> Optional[Artifact]:
        """Logs the files at ``path`` as a model version (the existing one when the
        content is the same) and links it to registered model
        ``registered_model_name`` in the registry."""
        if "/" in registered_model_name or ":" in registered_model_name:
            raise AssertionError("registered_model_name must be a name, not a path")
        art = self._log(self._model_artifact(path, name), None, "", commit=True)
        return self.link_artifact(art, f"{MODEL_REGISTRY}/{registered_model_name}", aliases)
