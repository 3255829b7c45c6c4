"""Artifacts and models through the W&B API: a dataset logged by one run, used by
a training run that logs and links a model to the registry, used again by name;
the same content giving the existing version; downloads as hard links and
verify; distributed writers; aliases; bad input refused."""

from __future__ import annotations

import os
import pathlib

import pytest

import runcore
from runcore import _artifacts
from conftest import Sidecar, read_json


def write(root: pathlib.Path, rel: str, text: str) -> pathlib.Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_dataset_training_model_registry(
    sidecar: Sidecar, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # use_model downloads into ./artifacts/<name>:<version>, as W&B does.
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "mnist"
    for i in range(5):
        write(data, f"train/{i}.csv", f"pixels,{i}\n")
    write(tmp_path, "labels.txt", "0123456789")
    refs = tmp_path / "refs"
    write(refs, "a.bin", "referenced a")

    with runcore.init(project="digits", job_type="prepare", settings=sidecar.settings()) as prep:
        ds = runcore.Artifact("mnist", type="dataset", description="digits", metadata={"rows": 5})
        ds.add_dir(data)
        ds.add_file(tmp_path / "labels.txt", name="meta/labels.txt")
        with ds.new_file("README.md") as f:
            f.write("five rows")
        ds.add_reference("s3://bucket/raw/mnist.tar")
        ds.add_reference(refs.as_uri(), name="refs")
        logged = prep.log_artifact(ds, aliases=["raw"])
        assert logged is ds and ds.version == "v0" and ds.name == "mnist:v0"
        assert ds.aliases == ["latest", "raw"]
        assert len(ds.digest) == 64 and ds.file_count == 9
        assert ds.logged_by() == [prep.path]
        assert ds.get_entry("meta/labels.txt").size == 10
        assert ds.get_entry("mnist.tar").ref == "s3://bucket/raw/mnist.tar"
        assert ds.get_entry("refs/a.bin").sha256 is not None  # file:// refs are read, not stored

    model_dir = tmp_path / "model"
    with runcore.init(project="digits", job_type="train", settings=sidecar.settings()) as train:
        used = train.use_artifact("mnist:latest", type="dataset")
        assert used.version == "v0" and used.metadata == {"rows": 5}
        root = tmp_path / "dl"
        with pytest.warns(runcore.RuncoreWarning, match="s3://bucket/raw/mnist.tar"):
            got = used.download(root)
        assert got == str(root)
        first = root / "train" / "0.csv"
        assert first.read_text() == "pixels,0\n"
        assert os.stat(first).st_nlink >= 2, "a hard link to the store"
        assert os.stat(first).st_mode & 0o222 == 0, "store files are read-only"
        assert (root / "refs" / "a.bin").read_text() == "referenced a"
        used.verify(root)
        assert sorted(e.path for e in used.files())[:2] == ["README.md", "meta/labels.txt"]
        write(model_dir, "weights.pt", "trained weights")
        train.log_model(model_dir, name="cnn", aliases=["candidate"])
        linked = train.link_model(model_dir, "digit-classifier", name="cnn", aliases=["staging"])
        assert linked is not None and linked.version == "v0"
        assert linked.type == "model"

    with runcore.init(project="digits", job_type="eval", settings=sidecar.settings()) as ev:
        path = ev.use_model("model-registry/digit-classifier:staging")
        assert pathlib.Path(path, "weights.pt").read_text() == "trained weights"
        again = ev.use_artifact("mnist:raw")
        assert set(again.used_by()) == {train.path, ev.path}
        # The public API's logged_artifacts() / used_artifacts().
        public_run = runcore.Api(sidecar.address).run(f"digits/{train.id}")
        logged = public_run.logged_artifacts()
        assert [a.name for a in logged] == ["cnn:v0"]
        inputs = public_run.used_artifacts()
        assert [a.name for a in inputs] == ["mnist:v0"]
        assert inputs[0].get_entry("meta/labels.txt").size == 10
        api = runcore.Api(sidecar.address)
        assert api.artifact("digits/mnist:raw", type="dataset").version == "v0"
        assert [a.name for a in api.artifact_versions("model", "cnn")] == ["cnn:v0"]
        both = _artifacts.list_artifacts(ev._sidecar, ev.settings, train.id, "")
        assert {a.name for a in both} == {"cnn:v0", "mnist:v0"}

    # The store on disk, as docs/ARTIFACTS.md lays it out.
    store = sidecar.data_dir / "artifacts"
    index = read_json(store / "mnist" / "index.json")
    assert index["type"] == "dataset" and index["aliases"] == {"latest": 0, "raw": 0}
    registry = read_json(store / "registry" / "digit-classifier.json")
    assert registry["links"][0]["artifact"] == "cnn" and registry["aliases"]["staging"] == 0


def test_same_content_is_the_same_version_and_one_change_is_a_new_one(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    src = tmp_path / "src"
    for i in range(20):
        write(src, f"f{i:02}.txt", f"file {i}")
    run = runcore.init(project="p", settings=sidecar.settings())
    v0 = run.log_artifact(str(src), name="data", type="dataset")
    blobs = sidecar.data_dir / "artifacts" / "blobs"
    stored = sum(len(files) for _, _, files in os.walk(blobs))
    assert v0.version == "v0" and stored == 20
    again = run.log_artifact(str(src), name="data", type="dataset")
    assert again.version == "v0" and again.digest == v0.digest
    write(src, "f07.txt", "changed")
    v1 = run.log_artifact(str(src), name="data", type="dataset")
    assert v1.version == "v1"
    assert sum(len(files) for _, _, files in os.walk(blobs)) == 21
    assert run.use_artifact("data:latest").version == "v1"
    # A new draft of v1 changing one file.
    draft = v1.new_draft()
    draft.remove("f00.txt")
    with draft.new_file("extra.txt") as f:
        f.write("extra")
    v2 = run.log_artifact(draft)
    assert v2.version == "v2" and v2.file_count == 20
    assert {e.path for e in v2.files()} == {f"f{i:02}.txt" for i in range(1, 20)} | {"extra.txt"}
    # Aliases set on a logged version move.
    v2.aliases.append("best")
    v2.save()
    assert run.use_artifact("data:best").version == "v2"
    run.finish()


def test_streamed_to_a_remote_sidecar(sidecar: Sidecar, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the sidecar were on another host: bytes travel in the stream.
    monkeypatch.setattr(_artifacts, "_is_local", lambda address: False)
    src = write(tmp_path, "big.bin", "x" * (3 * _artifacts.CHUNK + 17))
    with runcore.init(project="p", settings=sidecar.settings()) as run:
        art = runcore.Artifact("blob", "dataset")
        art.add_file(src)
        run.log_artifact(art)
        got = run.use_artifact("blob:v0").download(tmp_path / "out")
    assert pathlib.Path(got, "big.bin").read_bytes() == src.read_bytes()


def test_distributed_writers_make_one_version(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    run = runcore.init(project="p", group="job7", settings=sidecar.settings())
    for i in range(3):
        shard = write(tmp_path, f"shard{i}.txt", f"shard {i}")
        art = runcore.Artifact("shards", "dataset")
        art.add_file(shard)
        if i < 2:
            pending = run.upsert_artifact(art)
            assert pending.state == "PENDING"
        else:
            done = run.finish_artifact(art)
    assert done.version == "v0" and done.file_count == 3
    with pytest.raises(ValueError, match="distributed_id"):
        runcore.init(project="p", settings=sidecar.settings(), reinit=True).upsert_artifact(str(tmp_path / "shard0.txt"))
    runcore.finish()


def test_bad_input_is_refused(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    f = write(tmp_path, "a.txt", "a")
    run = runcore.init(project="p", settings=sidecar.settings())
    with pytest.raises(runcore.UsageError, match="no artifact named"):
        run.use_artifact("missing:latest")
    with pytest.raises(ValueError, match="must be"):
        run.use_artifact("a/b/c/d:v0")
    art = runcore.Artifact("ds", "dataset")
    with pytest.raises(ValueError, match="relative"):
        art.add_file(f, name="../escape.txt")
    with pytest.raises(ValueError, match="add_reference"):
        art.add_reference("ftp://host/file")
    art.add_file(f)
    with pytest.raises(ValueError, match="already has"):
        art.add_file(f)
    run.log_artifact(art)
    other = runcore.Artifact("ds", "model")
    other.add_file(f)
    with pytest.raises(ValueError, match="has type \"dataset\""):
        run.log_artifact(other)
    with pytest.raises(runcore.UsageError, match="draft"):
        runcore.Artifact("x", "dataset").download()
    with pytest.raises(AssertionError):
        run.link_model(f, "team/reg")
    run.finish()
