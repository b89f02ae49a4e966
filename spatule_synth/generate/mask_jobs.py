"""Masks of box-only objects for the read stage (``--mask=grabcut`` or ``model``): from the mask
cache (`spatule_synth.core.mask_cache`), else made on a process pool, else in the parent.

The read stage (`spatule_synth.generate.sources`) validates a few photos ahead of the one it cuts
(`MaskJobs.may_read_ahead`) and asks `MaskJobs.request` for the masks each will need as soon as it is
validated. The parent looks them up in the cache and sends the misses of one photo to the pool as
one task (`PhotoTask`: its path, the content key of the bytes the parent decoded, and its integer
boxes in the displayed frame, the frame of the decoded pixels: EXIF rotation and a resize after
labelling are already applied to them by `spatule_synth.core.validation`). The worker
(`refine_photo`) reads the file, checks it still has that content, decodes it as
`spatule_synth.core.images.read_image` does (the same pixels the parent decoded), refines every
box with `spatule_synth.core.masks.refine_mask`, stores each mask in the cache and returns them.
`MaskJobs.mask` gives each mask when the read stage cuts the photo, in input order, waiting for its
task if needed; so problems (``mask_fallback``) are reported in the same order as by a serial run.

Results are byte-identical for any ``num_workers``, with or without the cache: a mask depends only
on the decoded pixels and the box (GrabCut re-seeds OpenCV's RNG before each call; its result does
not depend on OpenCV's thread count, checked on the raccoon photos). A photo whose file changed
after the parent read it is refined in the parent, from the parent's pixels.

With one worker (``num_workers=1``) nothing is read ahead and masks are made in the parent when
asked for, as before the pool existed (the cache still applies). Otherwise the pool has
``workers`` (`spatule_synth.core.config.ExecutionConfig.worker_count`) workers, started like the image workers
(`spatule_synth.generate.worker_pool`: ``spawn``, Ctrl-C left to the parent, killed with the
parent, one OpenCV thread each), as tasks come and only for masks missing from the cache: a run
whose masks are all cached starts no process. A worker that dies stops the read stage with
`MaskWorkerDiedError` instead of hanging it. Memory stays flat, whatever the number of photos:
besides the photo being cut, the parent holds at most `PHOTOS_AHEAD_PER_WORKER` validated photos
per worker (decoded, waiting for their masks), and stops reading ahead once they hold
`LOOKAHEAD_MB` (pixels and file bytes); a task carries a path, not pixels. Reading several
photos ahead per worker keeps the workers busy while the photo at the head of the line waits for
a long GrabCut (one raccoon photo's masks take from 0.1 to 4 s; simulated on those times, 2 per
worker loses 15% to such waits, 4 per worker 3%). With ``--mask=model`` each worker loads the
model once (TensorFlow in every worker: memory grows with the number of workers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import InputsConfig
from spatule_synth.core.images import ImageReadError, decode_image
from spatule_synth.core.mask_cache import MaskCache, cache_dir, method_identity, photo_key
from spatule_synth.core.masks import IntBox, MaskModel, RefinedMask, load_mask_model, refine_mask
from spatule_synth.core.validation import ValidPhoto
from spatule_synth.generate.worker_pool import end_workers, spawn_pool, start_worker
from spatule_synth.core import storage

REFINED_METHODS = ("grabcut", "model")
PHOTOS_AHEAD_PER_WORKER = 4
LOOKAHEAD_MB = 512


class MaskWorkerDiedError(ChildProcessError):
    """A mask worker process ended abruptly; the read stage cannot finish. (An OSError, so that
    the command line reports it as an error without a traceback.)"""


@dataclasses.dataclass(frozen=True)
class PhotoTask:
    """The masks one worker makes for one photo."""

    path: str
    content: str  # `photo_key` of the bytes the parent decoded
    boxes: tuple[IntBox, ...]  # integer boxes in the frame of the decoded pixels
    keys: tuple[str, ...]  # their cache keys
    method: str
    model_path: str
    cache_folder: str | None


@dataclasses.dataclass(eq=False)
class PhotoMasks:
    """What `MaskJobs.request` started for one photo; `MaskJobs.mask` reads it."""

    content: str = ""
    keys: dict[IntBox, str] = dataclasses.field(default_factory=dict)  # not in the cache
    ready: dict[IntBox, RefinedMask] = dataclasses.field(default_factory=dict)
    future: Future | None = None
    task: PhotoTask | None = None
    error: Exception | None = None  # raised when a mask is asked for: in input order


class MaskJobs(contextlib.AbstractContextManager):
    """The masks of one read stage (module docstring); ``with MaskJobs(inputs, workers) as jobs: ...``.

    ``hits`` and ``misses`` count the requested masks found in the cache and the ones computed."""

    def __init__(self, inputs: InputsConfig, workers: int = 1, cache: MaskCache | None = None) -> None:
        self.method, self.model_path = inputs.mask, inputs.mask_model
        self.refining = self.method in REFINED_METHODS
        self.workers = workers if self.refining else 1
        self.lookahead = PHOTOS_AHEAD_PER_WORKER * self.workers if self.workers > 1 else 0
        self.cache = cache if cache is not None else MaskCache(cache_dir() if self.refining else None)
        self.hits = self.misses = 0
        self._method_id: str | None = None
        self._model: MaskModel | None = None
        self._executor: ProcessPoolExecutor | None = None

    def may_read_ahead(self, photos: int, held_bytes: int) -> bool:
        """Whether the read stage may validate one more photo while ``photos`` validated photos,
        of ``held_bytes`` bytes (pixels and file), wait to be cut (module docstring)."""
        return photos == 0 or (photos <= self.lookahead and held_bytes < LOOKAHEAD_MB << 20)

    def request(self, photo: ValidPhoto, boxes: Sequence[IntBox]) -> PhotoMasks:
        """Start making the masks of ``boxes`` of ``photo`` (cache, else the pool); never raises:
        an error is kept and raised by `mask`, when the read stage gets there."""
        masks = PhotoMasks()
        if not self.refining or not boxes:
            return masks
        try:
            masks.content = photo_key(photo.file_bytes)
            for box in dict.fromkeys(boxes):
                key = self.cache.key(masks.content, box, self._identity())
                cached = self.cache.load(key, box)
                if cached is None:
                    masks.keys[box] = key
                else:
                    masks.ready[box] = cached
            self.hits += len(masks.ready)
            self.misses += len(masks.keys)
            if masks.keys and self.workers > 1:
                readable = photo.image_path  # by the workers: a local copy of a URL (this machine)
                if storage.is_url(readable):
                    readable = storage.local_copy(readable, storage.input_cache_dir())
                masks.task = PhotoTask(readable, masks.content, tuple(masks.keys),
                                       tuple(masks.keys.values()), self.method, self.model_path,
                                       self.cache.folder)
                masks.future = self._pool().submit(refine_photo, masks.task)
        except Exception as error:  # pylint: disable=broad-except  (re-raised by mask, in order)
            masks.error = error
        return masks

    def mask(self, masks: PhotoMasks, photo: ValidPhoto, box: IntBox) -> RefinedMask:
        """The mask of ``box`` (requested or not) of ``photo``: cached, made by the pool, or made
        now from the photo's pixels (one worker, or the file changed since it was read)."""
        if masks.error is not None:
            raise masks.error
        if box not in masks.ready and masks.future is not None:
            self._collect(masks)
        if box not in masks.ready:
            if not masks.content:
                masks.content = photo_key(photo.file_bytes)
            key = masks.keys.get(box) or self.cache.key(masks.content, box, self._identity())
            refined = refine_mask(photo.image.pixels, Box(*box), self.method, self._load_model())
            self.cache.store(key, refined)
            masks.ready[box] = refined
        return masks.ready[box]

    def _collect(self, masks: PhotoMasks) -> None:
        future, masks.future = masks.future, None
        try:
            results = future.result()
        except BrokenProcessPool as error:
            end_workers(self._executor)
            raise MaskWorkerDiedError(
                f"a mask worker process died abruptly (killed, or out of memory?) while refining "
                f"the masks of {masks.task.path if masks.task else 'a photo'}; rerun with fewer "
                "--num_workers (masks made so far are cached)") from error
        if results is not None:  # None: the file changed; made in the parent from its pixels
            masks.ready.update(zip(masks.task.boxes, results))

    def _identity(self) -> str:
        if self._method_id is None:
            self._method_id = method_identity(self.method, self.model_path)
        return self._method_id

    def _load_model(self) -> MaskModel | None:
        if self.method == "model" and self._model is None:
            self._model = load_mask_model(self.model_path)
        return self._model

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = spawn_pool(self.workers, _init_worker, (os.getpid(), self.method))
        return self._executor

    def __exit__(self, *exc_info) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


# --- in the workers --------------------------------------------------------------------------

_MODELS: dict[str, MaskModel] = {}


def _init_worker(parent: int, method: str) -> None:
    start_worker(parent)
    if method == "model":  # several processes on one GPU: none may take all of its memory
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def refine_photo(task: PhotoTask) -> list[RefinedMask] | None:
    """The masks of ``task`` (module docstring), also stored in the cache; None if the file
    no longer holds the bytes the parent decoded (or cannot be read or decoded now)."""
    try:
        data = storage.read_bytes(task.path)
        if photo_key(data) != task.content:
            return None
        pixels = decode_image(data).pixels  # = read_image(task.path).pixels
    except (OSError, ImageReadError):
        return None
    model = None
    if task.method == "model":
        model = _MODELS.get(task.model_path)
        if model is None:
            model = _MODELS[task.model_path] = load_mask_model(task.model_path)
    cache = MaskCache(task.cache_folder)
    results = []
    for box, key in zip(task.boxes, task.keys):
        refined = refine_mask(pixels, Box(*box), task.method, model)
        cache.store(key, refined)
        results.append(refined)
    return results
