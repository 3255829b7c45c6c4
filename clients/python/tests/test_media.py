"""Tables, charts and rich media logged as W&B logs them: a file under the run's
files/media/<kind>/ and a history value naming it (``_type``, ``path``,
``sha256``, ``size`` and the kind's fields)."""

from __future__ import annotations

import hashlib
import json
import pathlib
import wave

import pytest

import runcore
from conftest import Sidecar


def media_file(sidecar: Sidecar, run: runcore.Run, ref: dict[str, object]) -> pathlib.Path:
    path = sidecar.run_dir(run) / "files" / str(ref["path"])
    assert path.is_file(), path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref["sha256"]
    assert path.stat().st_size == ref["size"]
    return path


def test_tables_and_charts(sidecar: Sidecar) -> None:
    table = runcore.Table(columns=["epoch", "loss"], data=[[0, 1.0], [1, 0.5]])
    table.add_data(2, 0.25)
    table.add_column("acc", [0.1, 0.5, 0.9])
    assert table.get_column("loss") == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="2 values for 3 columns"):
        table.add_data(3, 0.1)
    with pytest.raises(KeyError):
        table.get_column("nope")
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log({"results": table, "curve": runcore.plot.line(table, "epoch", "loss", title="Loss")})
    table.add_data(3, 0.1, 0.95)
    run.log({"results": table, "hist": runcore.plot.histogram(table, "loss")})
    with pytest.raises(ValueError, match="no column 'x'"):
        runcore.plot.scatter(table, "x", "loss")
    run.finish()
    rows = sidecar.history(run)
    first = rows[0]["results"]
    assert first["_type"] == "table-file" and first["path"].startswith("media/table/results_0_")
    assert first["path"].endswith(".table.json")
    assert (first["ncols"], first["nrows"]) == (3, 3)
    body = json.loads(media_file(sidecar, run, first).read_text())
    assert body == {"columns": ["epoch", "loss", "acc"], "data": [[0, 1.0, 0.1], [1, 0.5, 0.5], [2, 0.25, 0.9]]}
    assert rows[1]["results"]["nrows"] == 4, "a table is written when it is logged"
    curve = rows[0]["curve"]
    assert curve["chart"] == {"type": "line", "x": "epoch", "y": "loss", "title": "Loss"}
    assert rows[1]["hist"]["chart"] == {"type": "histogram", "value": "loss"}


def test_html_object3d_audio_video(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    np = pytest.importorskip("numpy")
    obj = tmp_path / "cube.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    run = runcore.init(project="p", settings=sidecar.settings())
    samples = np.sin(np.linspace(0, 440 * 2 * np.pi, 8000)).astype("float32")
    frames = np.zeros((3, 3, 8, 8), dtype=np.uint8)
    frames[1] = 255
    run.log(
        {
            "page": runcore.Html("<h1>hello</h1>"),
            "mesh": runcore.Object3D(str(obj)),
            "cloud": runcore.Object3D(np.random.rand(10, 3)),
            "tone": runcore.Audio(samples, sample_rate=8000, caption="a4"),
            "clip": runcore.Video(frames, fps=2),
        }
    )
    with pytest.raises(ValueError, match="sample_rate"):
        runcore.Audio(samples)
    with pytest.raises(ValueError, match="must be one of"):
        runcore.Object3D(str(tmp_path / "x.txt"))
    run.finish()
    row = sidecar.history(run)[0]
    assert row["page"]["_type"] == "html-file"
    assert media_file(sidecar, run, row["page"]).read_text() == "<h1>hello</h1>"
    assert row["mesh"]["_type"] == "object3D-file" and row["mesh"]["path"].endswith(".obj")
    assert row["cloud"]["path"].endswith(".json")
    tone = row["tone"]
    assert tone["_type"] == "audio-file" and tone["caption"] == "a4"
    assert (tone["sample_rate"], tone["duration"]) == (8000, 1.0)
    with wave.open(str(media_file(sidecar, run, tone))) as w:
        assert (w.getframerate(), w.getnframes()) == (8000, 8000)
    clip = row["clip"]
    assert clip["_type"] == "video-file" and (clip["format"], clip["fps"]) == ("gif", 2)
    assert media_file(sidecar, run, clip).read_bytes()[:3] == b"GIF"


def test_matplotlib_figures_are_images(sidecar: Sidecar) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    run = runcore.init(project="p", settings=sidecar.settings())
    run.log({"fig": fig, "wrapped": runcore.Image(fig)})
    run.finish()
    row = sidecar.history(run)[0]
    for key in ("fig", "wrapped"):
        assert row[key]["_type"] == "image-file"
        assert media_file(sidecar, run, row[key]).read_bytes()[:4] == b"\x89PNG"


def test_a_table_goes_into_an_artifact(sidecar: Sidecar, tmp_path: pathlib.Path) -> None:
    table = runcore.Table(columns=["a"], data=[[1], [2]])
    with runcore.init(project="p", settings=sidecar.settings()) as run:
        art = runcore.Artifact("preds", "predictions")
        art.add(table, "eval/preds")
        run.log_artifact(art)
        root = run.use_artifact("preds:latest").download(tmp_path / "out")
    assert json.loads(pathlib.Path(root, "eval", "preds.table.json").read_text())["data"] == [[1], [2]]
