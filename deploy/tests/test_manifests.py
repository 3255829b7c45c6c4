"""Checks the Kubernetes manifests against the runcore binary they deploy, so the
two cannot drift apart: every RUNCORE_* variable is one `runcore serve` reads, the
socket the trainer is pointed at is the one the sidecar listens on (through a shared
volume), probes ask that address, the grace period matches, credentials come from
Secrets, and a sidecar on the pod network has a token."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
from typing import Any, Iterator

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
BIN = os.environ.get("RUNCORE_BIN", str(REPO / "target" / "debug" / "runcore"))


def serve_env_vars() -> set[str]:
    """The environment variables `runcore serve --help` documents."""
    help_text = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\[env: ([A-Z0-9_]+)[=\]]", help_text))


def documents(path: pathlib.Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def pod_spec(path: pathlib.Path) -> dict[str, Any]:
    jobs = [d for d in documents(path) if d["kind"] == "Job"]
    assert len(jobs) == 1, f"{path.name}: one Job expected"
    spec: dict[str, Any] = jobs[0]["spec"]["template"]["spec"]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def mounts_of(container: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


def volume_holding(container: dict[str, Any], path: str) -> str | None:
    """The volume a container sees `path` in (the longest mount prefix)."""
    best = None
    for mount, name in mounts_of(container).items():
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            if best is None or len(mount) > len(best[0]):
                best = (mount, name)
    return best[1] if best else None


def sidecar_and_trainer(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    sidecars = [c for c in spec.get("initContainers", []) if c["name"] == "runcore"]
    assert len(sidecars) == 1, "runcore runs as an init container"
    trainers = spec["containers"]
    assert len(trainers) == 1
    return sidecars[0], trainers[0]


def manifests() -> Iterator[pathlib.Path]:
    assert MANIFESTS, "no manifests found"
    yield from MANIFESTS


@pytest.mark.parametrize("path", list(manifests()), ids=lambda p: p.name)
def test_manifest_matches_the_binary(path: pathlib.Path) -> None:
    spec = pod_spec(path)
    sidecar, trainer = sidecar_and_trainer(spec)
    env = env_of(sidecar)

    # A native sidecar, that can see the trainer's pid.
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"][0] == "serve"
    assert spec["shareProcessNamespace"] is True

    # Every RUNCORE_* setting is one the binary reads.
    known = serve_env_vars()
    for name in env:
        if name.startswith("RUNCORE_"):
            assert name in known, f"{path.name}: {name} is not a `runcore serve` setting"

    # The grace period Kubernetes gives matches the sidecar's own.
    assert int(env["RUNCORE_SHUTDOWN_GRACE"]["value"]) == spec["terminationGracePeriodSeconds"]

    # The memory budget leaves half the container's limit to the rest, and large
    # buffers go back to the kernel when freed (service/tests/memory_budget.rs
    # holds the sidecar to the limit with these settings).
    limit = sidecar["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    assert int(env["RUNCORE_MEMORY_BUDGET"]["value"]) <= int(limit[:-2]) * 2**20 // 2
    assert int(env["MALLOC_MMAP_THRESHOLD_"]["value"]) > 0

    # The trainer is pointed at the sidecar's listener.
    listen = env["RUNCORE_LISTEN"]["value"]
    address = env_of(trainer)["RUNCORE_ADDRESS"]["value"]
    readiness, liveness = sidecar["readinessProbe"], sidecar["livenessProbe"]
    if listen.startswith("unix://"):
        assert address == listen
        socket_dir = os.path.dirname(listen[len("unix://"):])
        shared = volume_holding(sidecar, socket_dir)
        assert shared is not None and shared == volume_holding(trainer, socket_dir), "the socket's directory is a shared volume"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[shared]
        for probe in (readiness, liveness):
            command = probe["exec"]["command"]
            assert command[:2] == ["runcore", "health"]
            assert command[command.index("--address") + 1] == listen
    else:
        host_port = listen[len("tcp://"):]
        host, port = host_port.rsplit(":", 1)
        assert address == f"tcp://127.0.0.1:{port}"
        if host not in ("127.0.0.1", "::1", "localhost"):
            token = env.get("RUNCORE_AUTH_TOKEN")
            assert token and "secretKeyRef" in token["valueFrom"], "a pod-network listener needs a token from a Secret"
            trainer_token = env_of(trainer).get("RUNCORE_AUTH_TOKEN")
            assert trainer_token and trainer_token["valueFrom"] == token["valueFrom"]
        assert int(port) in [p["containerPort"] for p in sidecar["ports"]]
        for probe in (readiness, liveness):
            assert probe["grpc"]["port"] == int(port)
        assert readiness["grpc"]["service"] == "runcore.v1.RunService"

    # The data dir is a volume (run data outlives a sidecar restart in the pod).
    data_dir = env["RUNCORE_DATA_DIR"]["value"]
    assert volume_holding(sidecar, data_dir) is not None

    # Files the trainer saves are visible to the sidecar at the same path.
    workdir = trainer.get("workingDir")
    assert workdir and volume_holding(sidecar, workdir) == volume_holding(trainer, workdir) is not None

    # Pod identity for metadata.json, under names the sidecar reads.
    for name in ("POD_NAME", "POD_NAMESPACE", "NODE_NAME"):
        assert "fieldRef" in env[name]["valueFrom"]

    # Credentials only from Secrets, never literal.
    for name, e in env.items():
        if any(word in name for word in ("TOKEN", "PASSWORD", "API_KEY")):
            assert "value" not in e and "secretKeyRef" in e["valueFrom"], f"{name} must come from a Secret"

    # GPUs visible to the sampler; resources sized.
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert sidecar["resources"]["requests"]["memory"] and sidecar["resources"]["limits"]["memory"]
