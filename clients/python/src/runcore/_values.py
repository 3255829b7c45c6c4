"""Logged values: Python objects to the wire's ``Value`` and back, and the data
types users log (``Histogram``, ``Image``; the other media, tables and plots are
in ``_media`` and ``plot``).

``log()`` keeps plain floats out of this module (they travel in the packed scalar
fields); everything else is checked here, at call time, so that a value that cannot
be logged raises ``ValueError`` naming its key and type, as W&B does.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from ._proto import runcore_pb2 as pb

if TYPE_CHECKING:
    from ._proto.runcore_pb2 import Value

#: Deepest nesting of dicts and lists in one value (the sidecar's limit).
MAX_DEPTH = 32
#: Most bins a histogram may have (W&B's and the sidecar's limit).
MAX_BINS = 512
#: numpy arrays with more elements than this are logged as histograms, as W&B does.
ARRAY_AS_HISTOGRAM = 32
#: Bins of such an automatic histogram (W&B's choice).
ARRAY_HISTOGRAM_BINS = 32
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_MEDIA_TYPES = {
    pb.MEDIA_KIND_IMAGE: "image-file",
    pb.MEDIA_KIND_AUDIO: "audio-file",
    pb.MEDIA_KIND_VIDEO: "video-file",
    pb.MEDIA_KIND_FILE: "file",
    pb.MEDIA_KIND_UNSPECIFIED: "file",
}

StrPath = Union[str, "os.PathLike[str]"]


def _numpy() -> Any:
    """numpy if it is already imported (a user who logs arrays has imported it)."""
    import sys

    return sys.modules.get("numpy")


def unloggable(key: str, value: Any, why: str = "") -> ValueError:
    tname = type(value).__module__ + "." + type(value).__qualname__
    if tname.startswith("builtins."):
        tname = tname[len("builtins.") :]
    msg = f"cannot log {key!r}: values of type {tname} are not supported"
    if why:
        msg += f" ({why})"
    else:
        msg += (
            "; log int, float, bool, str, None, dicts and lists of them, numpy scalars "
            "and arrays, runcore.Histogram or runcore.Image"
        )
    return ValueError(msg)


def normalize(key: str, v: Any) -> Any:
    """A value ready to queue: a float (a packed scalar), an int, bool, str or None
    (sent as is), or a ``Value`` message (a snapshot of anything mutable)."""
    t = type(v)
    if t is float or t is bool or t is str or v is None:
        return v
    if t is int:
        return v if _INT64_MIN <= v <= _INT64_MAX else float(v)
    np = _numpy()
    if np is not None and isinstance(v, np.generic) and not isinstance(v, np.ndarray):
        return normalize(key, v.item())
    if isinstance(v, float):
        return float(v)
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return normalize(key, int(v))
    if isinstance(v, str):
        return str(v)
    out = pb.Value()
    fill(out, key, v, 0)
    return out


def to_value(key: str, v: Any) -> "Value":
    out = pb.Value()
    fill(out, key, v, 0)
    return out


def fill(dst: "Value", key: str, v: Any, depth: int) -> None:
    """Writes ``v`` into ``dst`` (built in place: no copies of nested messages)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"cannot log {key!r}: nested deeper than {MAX_DEPTH} levels")
    t = type(v)
    if t is float:
        dst.double_value = v
    elif t is bool:
        dst.bool_value = v
    elif t is int:
        if _INT64_MIN <= v <= _INT64_MAX:
            dst.int_value = v
        else:
            dst.double_value = float(v)
    elif t is str:
        dst.string_value = v
    elif v is None:
        dst.null_value = True
    elif isinstance(v, Mapping):
        dst.map_value.SetInParent()
        fields = dst.map_value.fields
        for k2, v2 in v.items():
            if not isinstance(k2, str):
                if isinstance(k2, (int, float, bool)) or k2 is None:
                    k2 = str(k2) if not isinstance(k2, bool) else str(k2).lower()
                else:
                    raise ValueError(
                        f"cannot log {key!r}: a nested key has type {type(k2).__name__}; keys must be str"
                    )
            fill(fields[k2], key, v2, depth + 1)
    elif isinstance(v, (list, tuple)):
        dst.list_value.SetInParent()
        values = dst.list_value.values
        for x in v:
            fill(values.add(), key, x, depth + 1)
    elif isinstance(v, Histogram):
        v._fill(dst.histogram)
    elif isinstance(v, Media):
        v._fill(dst.media)
    else:
        _fill_foreign(dst, key, v, depth)


def _fill_foreign(dst: "Value", key: str, v: Any, depth: int) -> None:
    np = _numpy()
    if np is not None:
        if isinstance(v, np.ndarray):
            if v.dtype.kind in "biuf" and v.size > ARRAY_AS_HISTOGRAM:
                Histogram(v, num_bins=ARRAY_HISTOGRAM_BINS)._fill(dst.histogram)
                return
            if v.dtype.kind not in "biufUSO":
                raise unloggable(key, v, f"numpy dtype {v.dtype} cannot be logged")
            fill(dst, key, v.tolist(), depth)
            return
        if isinstance(v, np.generic):
            fill(dst, key, v.item(), depth)
            return
    if isinstance(v, float):
        dst.double_value = float(v)
        return
    if isinstance(v, bool):
        dst.bool_value = bool(v)
        return
    if isinstance(v, int):
        fill(dst, key, int(v), depth)
        return
    if isinstance(v, str):
        dst.string_value = str(v)
        return
    module = type(v).__module__ or ""
    if _is_figure(v):
        Image(v)._fill(dst.media)
        return
    if module.startswith("torch") and hasattr(v, "detach"):
        fill(dst, key, v.detach().cpu().numpy(), depth)
        return
    raise unloggable(key, v)


def from_value(v: "Value") -> Any:
    """A wire value as plain Python, in the local store's JSON shape."""
    kind = v.WhichOneof("kind")
    if kind == "double_value":
        return v.double_value
    if kind == "int_value":
        return v.int_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "string_value":
        return v.string_value
    if kind == "map_value":
        return {k: from_value(x) for k, x in v.map_value.fields.items()}
    if kind == "list_value":
        return [from_value(x) for x in v.list_value.values]
    if kind == "histogram":
        h = v.histogram
        return {"_type": "histogram", "bins": list(h.bins), "values": list(h.counts)}
    if kind == "media":
        m = v.media
        out = {"_type": _MEDIA_TYPES.get(m.kind, "file"), "path": m.path}
        if m.caption:
            out["caption"] = m.caption
        return out
    return None


def map_to_proto(target: Any, values: Mapping[str, Any], what: str) -> None:
    """Fills a proto ``map<string, Value>`` from a dict of Python values."""
    for k, v in values.items():
        if not isinstance(k, str) or not k:
            raise ValueError(f"{what} keys must be non-empty str, got {k!r}")
        fill(target[k], k, v, 0)


def map_from_proto(values: Mapping[str, "Value"]) -> dict[str, Any]:
    return {k: from_value(v) for k, v in values.items()}


# ---------------------------------------------------------------------------------
# Data types


def _floats(sequence: Any) -> list[float]:
    np = _numpy()
    if np is not None and isinstance(sequence, np.ndarray):
        return [float(x) for x in sequence.astype(float).ravel().tolist()]
    module = type(sequence).__module__ or ""
    if module.startswith("torch") and hasattr(sequence, "detach"):
        return _floats(sequence.detach().cpu().numpy())
    out: list[float] = []
    stack: list[Any] = [sequence]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif np is not None and isinstance(item, np.ndarray):
            out.extend(float(x) for x in item.astype(float).ravel().tolist())
        else:
            try:
                out.append(float(item))
            except (TypeError, ValueError):
                raise ValueError(f"Histogram: {item!r} is not a number") from None
    return out


class Histogram:
    """A histogram, as W&B's ``wandb.Histogram``.

    ``Histogram(sequence, num_bins=64)`` sends the raw values and the sidecar bins
    them into ``num_bins`` equal-width bins (non-finite values are left out);
    ``Histogram(np_histogram=(counts, bin_edges))`` sends ready bins, and then
    ``histogram`` and ``bins`` hold them.
    """

    def __init__(
        self,
        sequence: Optional[Sequence[Any]] = None,
        np_histogram: Optional[tuple[Any, Any]] = None,
        num_bins: int = 64,
    ) -> None:
        if not isinstance(num_bins, int) or not 1 <= num_bins <= MAX_BINS:
            raise ValueError(f"Histogram: num_bins must be 1..{MAX_BINS}, got {num_bins!r}")
        self.num_bins = num_bins
        self.histogram: Optional[list[int]] = None
        self.bins: Optional[list[float]] = None
        self._values: list[float] = []
        if np_histogram is not None:
            if len(np_histogram) != 2:
                raise ValueError("Histogram: np_histogram must be a (counts, bin_edges) pair")
            counts = [int(c) for c in _floats(np_histogram[0])]
            edges = _floats(np_histogram[1])
            if not counts:
                raise ValueError("Histogram: np_histogram has no bins")
            if len(counts) > MAX_BINS:
                raise ValueError(f"Histogram: {len(counts)} bins is more than {MAX_BINS}")
            if len(edges) != len(counts) + 1:
                raise ValueError(
                    f"Histogram: {len(counts)} counts need {len(counts) + 1} bin edges, got {len(edges)}"
                )
            if any(not (a <= b) for a, b in zip(edges, edges[1:])):
                raise ValueError("Histogram: bin edges must be increasing numbers")
            self.histogram, self.bins = counts, edges
        elif sequence is not None:
            self._values = _floats(sequence)
            if not self._values:
                raise ValueError("Histogram: the sequence is empty")
        else:
            raise ValueError("Histogram: give a sequence or np_histogram=(counts, bin_edges)")

    def _fill(self, h: Any) -> None:
        if self.histogram is not None and self.bins is not None:
            h.counts.extend(self.histogram)
            h.bins.extend(self.bins)
        else:
            h.values.extend(self._values)
            h.num_bins = self.num_bins

    def __repr__(self) -> str:
        if self.histogram is not None:
            return f"Histogram(bins={len(self.histogram)})"
        return f"Histogram(values={len(self._values)}, num_bins={self.num_bins})"


# Media files are copied into a private staging directory when the object is made,
# so that the sidecar (which copies them into the run when their row arrives, a few
# milliseconds later) never sees a file the user changed or deleted meanwhile. The
# directory is removed when the process exits, after its runs are finished.
_staging_lock = threading.Lock()
_staging: Optional[str] = None


def staging_dir() -> str:
    global _staging
    with _staging_lock:
        if _staging is None or not os.path.isdir(_staging):
            _staging = tempfile.mkdtemp(prefix="runcore-media-")
            atexit.register(shutil.rmtree, _staging, True)
        return _staging


def remove_staging() -> None:
    global _staging
    with _staging_lock:
        if _staging is not None:
            shutil.rmtree(_staging, ignore_errors=True)
            _staging = None


def _stage_copy(path: StrPath, what: str) -> str:
    src = os.path.abspath(os.fspath(path))
    if not os.path.isfile(src):
        raise ValueError(f"{what}: {src} is not a file")
    ext = os.path.splitext(src)[1]
    dst = os.path.join(staging_dir(), f"{uuid.uuid4().hex}{ext}")
    shutil.copyfile(src, dst)
    return dst


class Media:
    """A file logged as a value; the sidecar copies it into the run's files/media/."""

    _kind: int = pb.MEDIA_KIND_FILE
    _what = "File"
    #: Fields W&B writes next to the path in the history (width, ncols, ...).
    _extra: dict[str, Any] = {}

    def __init__(self, path: StrPath, caption: Optional[str] = None) -> None:
        self._path = _stage_copy(path, self._what)
        self.caption = caption

    def _fill(self, m: Any) -> None:
        m.path = self._path
        m.kind = self._kind
        if self.caption:
            m.caption = str(self.caption)
        if self._extra:
            map_to_proto(m.extra, self._extra, "media")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r}, caption={self.caption!r})"


def _image_array_to_png(data: Any, mode: Optional[str]) -> str:
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise ValueError(
            "Image: logging an image from an array needs Pillow (pip install pillow); "
            "or save the image to a file and log runcore.Image(path)"
        ) from None
    np = _numpy()
    if np is None:
        import numpy as np  # an array-like that is not numpy: numpy converts it
    module = type(data).__module__ or ""
    if module.startswith("torch") and hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    arr = np.asarray(data)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # CHW -> HWC, as W&B does
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"Image: an array of shape {arr.shape} is not an image (H,W), (H,W,C) or (C,H,W)")
    if arr.dtype.kind == "f":
        if arr.size and float(np.nanmin(arr)) >= 0.0 and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.nan_to_num(arr)
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    img = PILImage.fromarray(arr, mode=mode) if mode else PILImage.fromarray(arr)
    dst = os.path.join(staging_dir(), f"{uuid.uuid4().hex}.png")
    img.save(dst, format="PNG")
    return dst


class Image(Media):
    """An image, as W&B's ``wandb.Image``: from a file path, a PIL image, or (with
    Pillow installed) a numpy array (H,W), (H,W,C) or (C,H,W); float arrays in
    [0, 1] are scaled to 0..255."""

    _kind = pb.MEDIA_KIND_IMAGE
    _what = "Image"

    def __init__(
        self,
        data_or_path: Any,
        mode: Optional[str] = None,
        caption: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        self.caption = caption
        if isinstance(data_or_path, (str, os.PathLike)):
            self._path = _stage_copy(data_or_path, "Image")
            return
        if type(data_or_path).__module__.startswith("PIL.") and hasattr(data_or_path, "save"):
            dst = os.path.join(staging_dir(), f"{uuid.uuid4().hex}.png")
            data_or_path.save(dst, format="PNG")
            self._path = dst
            return
        if isinstance(data_or_path, Image):
            self._path = data_or_path._path
            self.caption = caption or data_or_path.caption
            return
        if _is_figure(data_or_path):
            self._path = _figure_to_png(data_or_path)
            return
        self._path = _image_array_to_png(data_or_path, mode)


def _is_figure(obj: Any) -> bool:
    """A matplotlib figure (or pyplot itself)."""
    module = type(obj).__module__ or getattr(obj, "__name__", "")
    return module.startswith("matplotlib") and hasattr(obj, "savefig")


def _figure_to_png(fig: Any) -> str:
    dst = os.path.join(staging_dir(), f"{uuid.uuid4().hex}.png")
    fig.savefig(dst, format="png")
    return dst
