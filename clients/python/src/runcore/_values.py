"""Logged values and the data types users log (``Histogram``, ``Image``; the other
media, tables and plots are in ``_media`` and ``plot``).

``run.log`` values are converted by the native core (``runcore._native``), in one
pass; what it does not know itself it hands to :func:`native_fallback` (numpy,
torch, matplotlib, subclasses of the plain types), and the data types tell it what
they are through ``_to_native()``. :func:`plain` applies the same rules in Python
for the values the client keeps (``run.config``), and the read API converts to and
from the wire's ``Value`` with :func:`map_to_proto` and :func:`from_value`
(protobuf is imported there only).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from ._enums import media_kind

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

#: The ``_type`` a media value has in the local store's JSON, by MediaKind.
_MEDIA_TYPES = {
    media_kind("IMAGE"): "image-file",
    media_kind("AUDIO"): "audio-file",
    media_kind("VIDEO"): "video-file",
}

StrPath = Union[str, "os.PathLike[str]"]


def _random_name() -> str:
    """A fresh file name stem for the staging directory (uuid is imported here, on
    the first media value, not by ``import runcore``)."""
    import uuid

    return uuid.uuid4().hex


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


def native_fallback(key: str, v: Any) -> Any:
    """What the native core logs for a value it does not know: a plain value, an
    object with ``_to_native()``, or a ValueError naming the key and the type.
    numpy scalars become Python's; numeric arrays of more than
    ARRAY_AS_HISTOGRAM elements a Histogram, others lists; torch tensors numpy
    arrays; a matplotlib figure an Image."""
    np = _numpy()
    if np is not None:
        if isinstance(v, np.ndarray):
            if v.dtype.kind in "biuf" and v.size > ARRAY_AS_HISTOGRAM:
                return Histogram(v, num_bins=ARRAY_HISTOGRAM_BINS)
            if v.dtype.kind not in "biufUSO":
                raise unloggable(key, v, f"numpy dtype {v.dtype} cannot be logged")
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, str):
        return str(v)
    if _is_figure(v):
        return Image(v)
    module = type(v).__module__ or ""
    if module.startswith("torch") and hasattr(v, "detach"):
        return v.detach().cpu().numpy()
    raise unloggable(key, v)


def _key(key: str, k: Any) -> str:
    """A nested dict key as the wire has it (keys are str there)."""
    if isinstance(k, str):
        return k
    if isinstance(k, bool):
        return str(k).lower()
    if isinstance(k, (int, float)) or k is None:
        return str(k)
    raise ValueError(f"cannot log {key!r}: a nested key has type {type(k).__name__}; keys must be str")


def plain(key: str, v: Any, depth: int = 0, keep_native: bool = False) -> Any:
    """``v`` as the sidecar will hold it, in plain Python (tuples become lists,
    numpy values Python's, a Histogram or media the dict the store shows); with
    ``keep_native``, objects with ``_to_native`` are kept as they are."""
    if depth > MAX_DEPTH:
        raise ValueError(f"cannot log {key!r}: nested deeper than {MAX_DEPTH} levels")
    t = type(v)
    if t is float or t is bool or t is str or v is None:
        return v
    if t is int:
        return v if _INT64_MIN <= v <= _INT64_MAX else float(v)
    if isinstance(v, Mapping):
        return {_key(key, k): plain(key, x, depth + 1, keep_native) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(key, x, depth + 1, keep_native) for x in v]
    to_native = getattr(v, "_to_native", None)
    if to_native is not None:
        return v if keep_native else _plain_native(to_native())
    return plain(key, native_fallback(key, v), depth, keep_native)


def _plain_native(native: tuple[Any, ...]) -> dict[str, Any]:
    """A ``_to_native()`` tuple as the store's JSON shows the value."""
    if native[0] == "histogram_bins":
        return {"_type": "histogram", "bins": list(native[2]), "values": list(native[1])}
    if native[0] == "histogram":  # the sidecar bins raw values only in logged rows
        return {"_type": "histogram", "bins": [], "values": []}
    _, path, kind, caption, _extra = native
    out = {"_type": _MEDIA_TYPES.get(kind, "file"), "path": path}
    if caption:
        out["caption"] = caption
    return out


def _write(dst: "Value", v: Any) -> None:
    """Writes a value made by ``plain(..., keep_native=True)`` into ``dst``."""
    t = type(v)
    if t is float:
        dst.double_value = v
    elif t is bool:
        dst.bool_value = v
    elif t is int:
        dst.int_value = v
    elif t is str:
        dst.string_value = v
    elif v is None:
        dst.null_value = True
    elif t is dict:
        dst.map_value.SetInParent()
        for k, x in v.items():
            _write(dst.map_value.fields[k], x)
    elif t is list:
        dst.list_value.SetInParent()
        for x in v:
            _write(dst.list_value.values.add(), x)
    else:
        _write_native(dst, v._to_native())


def _write_native(dst: "Value", native: tuple[Any, ...]) -> None:
    if native[0] == "histogram_bins":
        dst.histogram.counts.extend(native[1])
        dst.histogram.bins.extend(native[2])
    elif native[0] == "histogram":
        dst.histogram.values.extend(native[1])
        dst.histogram.num_bins = native[2]
    else:
        _, path, kind, caption, extra = native
        m = dst.media
        m.path, m.kind = path, kind
        if caption:
            m.caption = caption
        if extra:
            map_to_proto(m.extra, extra, "media")


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
        _write(target[k], plain(k, v, keep_native=True))


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

    def _to_native(self) -> tuple[Any, ...]:
        """What the native core sends: ready bins, or the values to bin."""
        if self.histogram is not None and self.bins is not None:
            return ("histogram_bins", self.histogram, self.bins)
        return ("histogram", self._values, self.num_bins)

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
    dst = os.path.join(staging_dir(), f"{_random_name()}{ext}")
    shutil.copyfile(src, dst)
    return dst


class Media:
    """A file logged as a value; the sidecar copies it into the run's files/media/."""

    _kind: int = media_kind("FILE")
    _what = "File"
    #: Fields W&B writes next to the path in the history (width, ncols, ...).
    _extra: dict[str, Any] = {}

    def __init__(self, path: StrPath, caption: Optional[str] = None) -> None:
        self._path = _stage_copy(path, self._what)
        self.caption = caption

    def _to_native(self) -> tuple[Any, ...]:
        """What the native core sends: the staged file, its kind, caption and extras."""
        return ("media", self._path, self._kind, str(self.caption) if self.caption else "", self._extra)

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
    dst = os.path.join(staging_dir(), f"{_random_name()}.png")
    img.save(dst, format="PNG")
    return dst


class Image(Media):
    """An image, as W&B's ``wandb.Image``: from a file path, a PIL image, or (with
    Pillow installed) a numpy array (H,W), (H,W,C) or (C,H,W); float arrays in
    [0, 1] are scaled to 0..255."""

    _kind = media_kind("IMAGE")
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
            dst = os.path.join(staging_dir(), f"{_random_name()}.png")
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
    dst = os.path.join(staging_dir(), f"{_random_name()}.png")
    fig.savefig(dst, format="png")
    return dst
