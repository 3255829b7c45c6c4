"""Rich media and tables, as W&B's data types: ``Table``, ``Html``, ``Object3D``,
``Audio`` and ``Video`` (from files, or from numpy arrays when the packages that
write them are installed). Each becomes a file the sidecar copies into the run's
``files/media/<kind>/`` when its row is logged, and a history value naming it
(``{"_type": "table-file", "path": ..., "sha256": ..., "ncols": ...}``), as W&B
writes them. A value is written to a file when it is logged, so a table logged
twice with rows added in between gives two files.
"""

from __future__ import annotations

import json
import math
import os
import uuid
import wave
from typing import Any, Iterable, Optional, Sequence

from ._enums import media_kind
from ._values import Media, _numpy, _stage_copy, staging_dir

#: Columns of a Table made without any (W&B's default).
DEFAULT_COLUMNS = ["Input", "Output", "Expected"]


def _staged(ext: str) -> str:
    return os.path.join(staging_dir(), f"{uuid.uuid4().hex}{ext}")


def _cell(v: Any) -> Any:
    """A table cell as plain JSON-able Python (numpy values unwrapped)."""
    np = _numpy()
    if np is not None:
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_cell(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _cell(x) for k, x in v.items()}
    return str(v)


class Table(Media):
    """A table, as W&B's ``wandb.Table``: ``Table(columns, data)`` (rows),
    ``Table(dataframe=df)`` (pandas), ``add_data``, ``add_column``,
    ``get_column``. Logged, it becomes ``media/table/<key>_<step>_<hash>.table.json``
    (``{"columns": [...], "data": [[...], ...]}``) and a ``table-file`` value."""

    _kind = media_kind("TABLE")
    _what = "Table"

    def __init__(
        self,
        columns: Optional[Sequence[str]] = None,
        data: Optional[Iterable[Sequence[Any]]] = None,
        rows: Optional[Iterable[Sequence[Any]]] = None,
        dataframe: Any = None,
        dtype: Any = None,
        optional: Any = True,
        allow_mixed_types: bool = False,
    ) -> None:
        self.caption = None
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.values.tolist()
        source = data if data is not None else rows
        self.data: list[list[Any]] = [list(r) for r in source] if source is not None else []
        if columns is None:
            width = len(self.data[0]) if self.data else len(DEFAULT_COLUMNS)
            columns = DEFAULT_COLUMNS if width == len(DEFAULT_COLUMNS) else [f"col{i}" for i in range(width)]
        self.columns: list[str] = [str(c) for c in columns]
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"Table: column names repeat: {self.columns}")
        for i, row in enumerate(self.data):
            self._check_row(row, i)

    def _check_row(self, row: Sequence[Any], i: int) -> None:
        if len(row) != len(self.columns):
            raise ValueError(f"Table: row {i} has {len(row)} values for {len(self.columns)} columns {self.columns}")

    @property
    def ncols(self) -> int:
        return len(self.columns)

    @property
    def nrows(self) -> int:
        return len(self.data)

    def add_data(self, *data: Any) -> None:
        """Appends one row."""
        self._check_row(data, len(self.data))
        self.data.append(list(data))

    def add_row(self, *row: Any) -> None:
        self.add_data(*row)

    def add_column(self, name: str, data: Sequence[Any], optional: bool = False) -> None:
        """Adds a column; ``data`` has a value per row."""
        if name in self.columns:
            raise ValueError(f"Table: column {name!r} exists already")
        values = list(data)
        if self.data and len(values) != len(self.data):
            raise ValueError(f"Table: column {name!r} has {len(values)} values for {len(self.data)} rows")
        if not self.data:
            self.data = [[] for _ in values]
        self.columns.append(name)
        for row, v in zip(self.data, values):
            row.append(v)

    def get_column(self, name: str, convert_to: Optional[str] = None) -> Any:
        """A column's values (``convert_to="numpy"`` for an array)."""
        if name not in self.columns:
            raise KeyError(f"Table has no column {name!r}; columns are {self.columns}")
        k = self.columns.index(name)
        values = [row[k] for row in self.data]
        if convert_to == "numpy":
            import numpy as np

            return np.array(values)
        return values

    def get_dataframe(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.data, columns=self.columns)

    def _json(self) -> dict[str, Any]:
        return {"columns": self.columns, "data": [[_cell(v) for v in row] for row in self.data]}

    def _write_to(self, base: str) -> str:
        path = base if base.endswith(".table.json") else f"{base}.table.json"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            json.dump(self._json(), f, allow_nan=False, separators=(",", ":"))
        return path

    def _to_native(self) -> tuple[Any, ...]:
        # Written when logged: the rows as they are now.
        self._path = self._write_to(_staged(""))
        self._extra = {"ncols": self.ncols, "nrows": self.nrows}
        return super()._to_native()

    def __repr__(self) -> str:
        return f"Table(columns={self.columns}, rows={len(self.data)})"


class Html(Media):
    """HTML, as W&B's ``wandb.Html``: a string of HTML, a file-like object, or the
    path of an .html file."""

    _kind = media_kind("HTML")
    _what = "Html"

    def __init__(self, data: Any, inject: bool = True, data_is_not_path: bool = False) -> None:
        self.caption = None
        if hasattr(data, "read"):
            data = data.read()
        if not data_is_not_path and isinstance(data, (str, os.PathLike)) and os.path.isfile(os.fspath(data)):
            self._path = _stage_copy(data, "Html")
            return
        if not isinstance(data, str):
            raise ValueError("Html: give a string of HTML, a file-like object or an .html file's path")
        self._path = _staged(".html")
        with open(self._path, "w") as f:
            f.write(data)


class Object3D(Media):
    """A 3D object, as W&B's ``wandb.Object3D``: a file (.obj, .gltf, .glb,
    .babylon, .stl, .pts.json) or a numpy point cloud (N, 3|4|6)."""

    _kind = media_kind("OBJECT3D")
    _what = "Object3D"
    EXTENSIONS = (".obj", ".gltf", ".glb", ".babylon", ".stl", ".pts.json")

    def __init__(self, data_or_path: Any, caption: Optional[str] = None, **kwargs: Any) -> None:
        self.caption = caption
        if isinstance(data_or_path, (str, os.PathLike)):
            path = os.fspath(data_or_path)
            if not path.endswith(self.EXTENSIONS):
                raise ValueError(f"Object3D: {path} must be one of {', '.join(self.EXTENSIONS)}")
            self._path = _stage_copy(path, "Object3D")
            return
        np = _numpy()
        if np is None or not isinstance(data_or_path, np.ndarray):
            raise ValueError("Object3D: give a file path or a numpy array of points (N, 3|4|6)")
        if data_or_path.ndim != 2 or data_or_path.shape[1] not in (3, 4, 6):
            raise ValueError(f"Object3D: a point cloud has shape (N, 3|4|6), not {data_or_path.shape}")
        self._path = _staged(".pts.json")
        with open(self._path, "w") as f:
            json.dump(data_or_path.tolist(), f)


def _write_wav(path: str, data: Any, sample_rate: int) -> None:
    """Writes samples (floats in [-1, 1] or ints) as WAV: with soundfile when
    installed, else 16-bit PCM through the standard library."""
    try:
        import soundfile

        soundfile.write(path, data, sample_rate)
        return
    except ImportError:
        pass
    import numpy as np

    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        arr = (np.clip(arr, -1.0, 1.0) * 32767).astype("<i2")
    else:
        arr = arr.astype("<i2")
    channels = 1 if arr.ndim == 1 else arr.shape[1]
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(arr.tobytes())


class Audio(Media):
    """Audio, as W&B's ``wandb.Audio``: a file, or a numpy array of samples with
    ``sample_rate`` (written as WAV; numpy needed, soundfile used when there)."""

    _kind = media_kind("AUDIO")
    _what = "Audio"

    def __init__(self, data_or_path: Any, sample_rate: Optional[int] = None, caption: Optional[str] = None) -> None:
        self.caption = caption
        if isinstance(data_or_path, (str, os.PathLike)):
            self._path = _stage_copy(data_or_path, "Audio")
            return
        if _numpy() is None:
            raise ValueError("Audio: an array of samples needs numpy; or log the path of an audio file")
        if not sample_rate:
            raise ValueError("Audio: an array of samples needs sample_rate")
        self._path = _staged(".wav")
        _write_wav(self._path, data_or_path, int(sample_rate))
        n = len(data_or_path)
        self._extra = {"sample_rate": int(sample_rate), "duration": n / float(sample_rate)}


def _frames(data: Any) -> Any:
    """Video frames as (T, H, W, C) uint8 from W&B's (T, C, H, W)."""
    import numpy as np

    arr = np.asarray(data)
    if arr.ndim == 5:
        arr = arr[0]
    if arr.ndim != 4:
        raise ValueError(f"Video: frames have shape (time, channel, height, width), not {arr.shape}")
    if arr.shape[1] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.dtype.kind == "f" and arr.size and float(arr.max()) <= 1.0:
        arr = arr * 255.0
    return np.clip(arr, 0, 255).astype(np.uint8)


def _write_video(path: str, frames: Any, fps: int, fmt: str) -> None:
    """Writes frames with imageio when installed, else (GIF only) with Pillow."""
    try:
        import imageio
    except ImportError:
        imageio = None
    if imageio is not None:
        if fmt == "gif":
            imageio.mimwrite(path, list(frames), duration=1000.0 / fps, loop=0)
        else:
            imageio.mimwrite(path, list(frames), fps=fps)
        return
    if fmt != "gif":
        raise ValueError(f"Video: writing {fmt} from frames needs imageio (pip install imageio[ffmpeg]); gif needs only Pillow")
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise ValueError("Video: writing frames needs imageio or Pillow") from None
    images = [PILImage.fromarray(f[:, :, 0] if f.shape[-1] == 1 else f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


class Video(Media):
    """Video, as W&B's ``wandb.Video``: a file, or numpy frames (time, channel,
    height, width) written as ``format`` (gif with Pillow or imageio; mp4, webm
    with imageio[ffmpeg])."""

    _kind = media_kind("VIDEO")
    _what = "Video"

    def __init__(
        self, data_or_path: Any, caption: Optional[str] = None, fps: Optional[int] = None, format: Optional[str] = None
    ) -> None:
        self.caption = caption
        if isinstance(data_or_path, (str, os.PathLike)):
            self._path = _stage_copy(data_or_path, "Video")
            return
        if _numpy() is None:
            raise ValueError("Video: frames need numpy; or log the path of a video file")
        fmt = (format or "gif").lower()
        if fmt not in ("gif", "mp4", "webm", "ogg"):
            raise ValueError(f"Video: format {fmt!r} must be gif, mp4, webm or ogg")
        rate = int(fps or 4)
        frames = _frames(data_or_path)
        self._path = _staged(f".{fmt}")
        _write_video(self._path, frames, rate, fmt)
        self._extra = {"format": fmt, "fps": rate}
