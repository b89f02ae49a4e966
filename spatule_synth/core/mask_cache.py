"""A disk cache of refined masks (``--mask=grabcut`` / ``--mask=model``), so that a re-run of the
same photos does not run GrabCut or the mask model again.

**Key** (`MaskCache.key`): the SHA-256 of

* the photo's content (`photo_key`: the first 16 hex digits of the SHA-256 of the bytes that are
  decoded, as `spatule_synth.generate.identities.content_key`), never its path: a photo renamed,
  moved or copied hits, a photo edited in place misses;
* the integer box (`spatule_synth.core.boxes.Box.voc_ints`, the displayed frame) and the method;
* `method_identity`: `spatule_synth.core.masks.REFINE_VERSION`, every tunable constant of
  `spatule_synth.core.masks`, the versions of OpenCV and Pillow (the decoder and GrabCut), and for
  ``model`` the model's identity (`model_identity`: the SHA-256 of its file, or of every file of a
  SavedModel folder with their relative paths) with the versions of TensorFlow and Keras;
* `CACHE_FORMAT`.

So a cached mask is always the one the current code would compute; anything that could change it
changes the key, and stale entries are simply never read again.

**Files**: ``<folder>/<key[:2]>/<key>.mask``, written atomically (a temporary name, then a rename:
two runs writing the same entry at once are safe). Content: `MAGIC`, one JSON line (the key, the
mask's shape, the fallback reason or null), then the mask (``uint8``, 255 = object) compressed by
zlib. A file that is not exactly that (truncated, another key, another shape, a bad zlib stream or
checksum) is ignored: the mask is computed again and the file rewritten.

**Folder** (`cache_dir`): ``$SPATULE_SYNTH_MASK_CACHE`` when set and not empty (``off`` turns the
cache off), else ``$XDG_CACHE_HOME/spatule_synth/masks``, else ``~/.cache/spatule_synth/masks``.
Deleting the folder at any time is safe (``rm -rf ~/.cache/spatule_synth/masks``): masks are
computed again. A folder that cannot be written (read-only home) only costs the cache: one warning,
and the run goes on computing every mask.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from importlib import metadata

import numpy as np
from absl import logging

from spatule_synth.core import masks
from spatule_synth.core.masks import IntBox, RefinedMask
from spatule_synth.core.output_dir import atomic_write_bytes

CACHE_ENV = "SPATULE_SYNTH_MASK_CACHE"
CACHE_OFF = "off"
CACHE_FORMAT = 1
MAGIC = b"spatule_synth mask 1\n"
SUFFIX = ".mask"
_PHOTO_KEY_HEX = 16  # as spatule_synth.generate.identities.content_key
_MASK_CONSTANTS = ("CONTEXT_FRACTION", "MIN_CONTEXT", "MIN_GRABCUT_SIDE", "GRABCUT_ITERATIONS",
                   "GRABCUT_MAX_SIDE", "GRABCUT_SEED", "BOX_AGREEMENT_PX", "MIN_BOX_SHARE",
                   "MIN_COMPONENT_FRACTION", "DEFAULT_MODEL_SIZE", "LOGIT_TOLERANCE")


def cache_dir(environ: dict | None = None) -> str | None:
    """The cache folder (module docstring); None when ``$SPATULE_SYNTH_MASK_CACHE`` is ``off``."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(CACHE_ENV, "")
    if chosen:
        return None if chosen.strip().lower() == CACHE_OFF else os.path.abspath(os.path.expanduser(chosen))
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "spatule_synth", "masks")


def photo_key(data: bytes) -> str:
    """The content key of a photo's bytes: equal to ``content_key(path)`` of the file holding them."""
    return hashlib.sha256(data).hexdigest()[:_PHOTO_KEY_HEX]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def model_identity(path: str) -> str:
    """The SHA-256 of a mask model: of its file, or of every file of its folder (relative paths
    and bytes, in sorted order); `MaskModelError` if it does not exist."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        files = sorted(os.path.relpath(os.path.join(folder, name), path)
                       for folder, _, names in os.walk(path) for name in names)
    elif os.path.isfile(path):
        files = [""]
    else:
        raise masks.MaskModelError(f"{path}: no such mask model file or SavedModel folder")
    for relative in files:
        digest.update(relative.encode("utf-8", "surrogateescape") + b"\0")
        with open(os.path.join(path, relative) if relative else path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def method_identity(method: str, model_path: str = "") -> str:
    """Everything besides the photo and the box that a refined mask depends on (module docstring)."""
    import cv2  # pylint: disable=import-outside-toplevel
    import PIL  # pylint: disable=import-outside-toplevel

    parts = [method, f"refine {masks.REFINE_VERSION}",
             ",".join(f"{name}={getattr(masks, name)!r}" for name in _MASK_CONSTANTS),
             f"opencv {cv2.__version__}", f"pillow {PIL.__version__}"]
    if method == "model":
        parts += [f"model {model_identity(model_path)}", f"tensorflow {_version('tensorflow')}",
                  f"keras {_version('keras')}", f"tf_keras {_version('tf_keras')}"]
    return "; ".join(parts)


class MaskCache:
    """Masks by key in ``folder`` (None: a cache that holds nothing and stores nothing)."""

    def __init__(self, folder: str | None) -> None:
        self.folder = folder
        self._warned = False

    @staticmethod
    def key(photo: str, box: IntBox, method_id: str) -> str:
        """The key of the mask of ``box`` in the photo of content key ``photo`` (module docstring)."""
        text = json.dumps([CACHE_FORMAT, photo, [int(v) for v in box], method_id])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def path(self, key: str) -> str:
        assert self.folder is not None
        return os.path.join(self.folder, key[:2], key + SUFFIX)

    def load(self, key: str, box: IntBox) -> RefinedMask | None:
        """The cached mask of ``key`` over ``box``, or None if absent or not a valid entry."""
        if self.folder is None:
            return None
        try:
            with open(self.path(key), "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        return _parsed(data, key, (box[3] - box[1], box[2] - box[0]))

    def store(self, key: str, refined: RefinedMask) -> None:
        """Write the entry of ``key``; a cache that cannot be written is warned about once."""
        if self.folder is None:
            return
        mask = np.ascontiguousarray(refined.mask, dtype=np.uint8)
        header = json.dumps({"key": key, "shape": list(mask.shape), "reason": refined.fallback_reason})
        data = MAGIC + header.encode("utf-8") + b"\n" + zlib.compress(mask.tobytes(), 6)
        path = self.path(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write_bytes(path, data, durable=False)
        except OSError as error:
            if not self._warned:
                self._warned = True
                logging.warning("cannot write the mask cache %s (%s): masks are computed but not "
                                "kept for the next run; set %s to another folder, or to %s",
                                self.folder, error, CACHE_ENV, CACHE_OFF)


def _parsed(data: bytes, key: str, shape: tuple[int, int]) -> RefinedMask | None:
    """The entry in ``data`` if it is a whole entry of ``key`` with a mask of ``shape``."""
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    try:
        header = json.loads(data[len(MAGIC):end].decode("utf-8"))
        if not isinstance(header, dict) or header.get("key") != key or \
                header.get("shape") != list(shape):
            return None
        reason = header.get("reason")
        if reason is not None and not isinstance(reason, str):
            return None
        stream = zlib.decompressobj()
        pixels = stream.decompress(data[end + 1:])
    except (ValueError, zlib.error):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    if not stream.eof or stream.unused_data or len(pixels) != shape[0] * shape[1]:
        return None  # truncated, or followed by anything
    mask = np.frombuffer(pixels, np.uint8).reshape(shape).copy()
    return RefinedMask(mask, reason)
