"""The execute stage: plan + render + encode every image of a split, in-process or on a process pool.

Results come back in index order whatever the number of workers, and each image depends only on
``(seed, split, index)`` and the inputs, so outputs are byte-identical for any ``num_workers``.
Workers are started with ``spawn`` (no fork of a process that may hold TensorFlow threads) and
never import TensorFlow; the parent writes the files and records.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from typing import Iterator

import cv2

from spatule_synth.background_cache import BackgroundCache
from spatule_synth.config import GenerateConfig
from spatule_synth.plan import WINDOWS_PER_BACKGROUND, SampleSpec, SplitPool, plan_sample
from spatule_synth.render import SampleObject, render


@dataclasses.dataclass(frozen=True)
class RenderedSample:
    """What the writers need of one image: its plan, JPEG bytes, size and objects."""

    spec: SampleSpec
    jpeg: bytes
    size: int
    objects: tuple[SampleObject, ...]


class _Worker:
    """Per-process state: the config, the split's pool and a background cache."""

    def __init__(self, config: GenerateConfig, pool: SplitPool) -> None:
        self.config, self.pool = config, pool
        self.cache = BackgroundCache(config.canvas_size, config.cache_mb << 20)

    def __call__(self, index: int) -> RenderedSample:
        spec = plan_sample(self.config, self.pool, index)
        background = self.pool.backgrounds[spec.background]
        canvas = self.cache.window(background, *spec.window)
        sample = render(spec, self.pool, canvas)
        bgr = cv2.cvtColor(sample.pixels, cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise RuntimeError(f"{spec.name}: JPEG encoding failed")
        return RenderedSample(spec, encoded.tobytes(), self.config.canvas_size, sample.objects)


_WORKER: _Worker | None = None


def _init_worker(config: GenerateConfig, pool: SplitPool) -> None:
    global _WORKER
    cv2.setNumThreads(1)  # one process per core already
    _WORKER = _Worker(config, pool)


def _render_in_worker(index: int) -> RenderedSample:
    assert _WORKER is not None
    return _WORKER(index)


def worker_count(config: GenerateConfig) -> int:
    return config.num_workers or os.cpu_count() or 1


def render_split(config: GenerateConfig, pool: SplitPool, count: int) -> Iterator[RenderedSample]:
    """Images ``0 .. count-1`` of ``pool.split``, in order."""
    workers = min(worker_count(config), max(1, count // WINDOWS_PER_BACKGROUND))
    if workers <= 1:
        worker = _Worker(config, pool)
        yield from (worker(index) for index in range(count))
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(config, pool)) as processes:
        # Chunks aligned with the background blocks: one decode per photo per chunk.
        yield from processes.imap(_render_in_worker, range(count), chunksize=WINDOWS_PER_BACKGROUND)
