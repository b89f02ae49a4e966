"""The execute stage: plan, render and write every image of a split, in-process or on a pool.

Each image depends only on ``(seed, split, index)`` and the inputs, and results come back in index
order whatever the number of workers, so outputs are byte-identical for any ``num_workers``.
Workers write the image's JPEG and XML themselves and hand back only its serialized example and
manifest entry; the parent appends examples to the shards. Workers are started with ``spawn`` (no
fork of a process that may hold threads) and never import TensorFlow. At most a few chunks per
worker are in flight, so memory does not grow with the number of images, and a worker that dies
(killed by the system, out of memory) stops the run with `WorkerDiedError` instead of hanging it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

import cv2

from spatule_synth.background_cache import BackgroundCache
from spatule_synth.config import GenerateConfig
from spatule_synth.plan import SplitPool, plan_sample
from spatule_synth.render import render
from spatule_synth.sample_files import SampleOutputs, WrittenSample, write_sample

CHUNKS_IN_FLIGHT_PER_WORKER = 4


class WorkerDiedError(RuntimeError):
    """A worker process ended abruptly; the run cannot finish."""


@dataclasses.dataclass(frozen=True)
class SplitJob:
    """What one split's images need: its pool, where its files go, and its first ``source_id``."""

    pool: SplitPool
    outputs: SampleOutputs
    first_source_id: int


class _Worker:
    """Per-process state: the config, each split's job, and one background cache for all."""

    def __init__(self, config: GenerateConfig, jobs: dict[str, SplitJob]) -> None:
        self.config, self.jobs = config, jobs
        self.cache = BackgroundCache(config.canvas_size, config.cache_mb << 20)

    def __call__(self, split: str, index: int) -> WrittenSample:
        job = self.jobs[split]
        spec = plan_sample(self.config, job.pool, index)
        canvas = self.cache.window(job.pool.backgrounds[spec.background], *spec.window)
        sample = render(spec, job.pool, canvas, self.config.min_visible)
        return write_sample(sample, job.pool, str(job.first_source_id + index), job.outputs)


_WORKER: _Worker | None = None


def _init_worker(config: GenerateConfig, jobs: dict[str, SplitJob]) -> None:
    global _WORKER
    cv2.setNumThreads(1)  # one process per core already
    _WORKER = _Worker(config, jobs)


def _write_chunk(split: str, start: int, stop: int) -> list[WrittenSample]:
    assert _WORKER is not None
    return [_WORKER(split, index) for index in range(start, stop)]


def worker_count(config: GenerateConfig) -> int:
    return config.num_workers or os.cpu_count() or 1


class SampleWriters(contextlib.AbstractContextManager):
    """The processes that write images; one pool for the whole run (started once).

    ``with SampleWriters(config, jobs, counts) as writers: writers.write_split("train", n)``.
    """

    def __init__(self, config: GenerateConfig, jobs: dict[str, SplitJob], counts: dict[str, int]):
        self.config, self.jobs = config, jobs
        blocks = sum(math.ceil(count / job.pool.windows_per_background) for job, count in
                     ((jobs[split], images) for split, images in counts.items()))
        self.workers = min(worker_count(config), max(1, blocks))
        self._in_process = _Worker(config, jobs) if self.workers <= 1 else None
        self._executor = None if self._in_process else ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(config, jobs))

    def write_split(self, split: str, count: int) -> Iterator[WrittenSample]:
        """Write images ``0 .. count-1`` of ``split``; yields them in index order."""
        if self._in_process is not None:
            yield from (self._in_process(split, index) for index in range(count))
            return
        # One chunk per background block: one decode per chunk.
        block = self.jobs[split].pool.windows_per_background
        chunks = ((start, min(start + block, count)) for start in range(0, count, block))
        pending: collections.deque = collections.deque()
        try:
            for chunk in chunks:
                pending.append(self._executor.submit(_write_chunk, split, *chunk))
                if len(pending) >= CHUNKS_IN_FLIGHT_PER_WORKER * self.workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BrokenProcessPool as error:
            # Python 3.11 leaves the other workers waiting for work the broken pool never sends,
            # and shutting the pool down waits for them: end them first.
            for process in list(getattr(self._executor, "_processes", {}).values()):
                process.terminate()
            raise WorkerDiedError(
                f"a worker process died abruptly while writing the {split} images (killed, or out "
                "of memory?); rerun with fewer --num_workers or a smaller --cache_mb") from error
        finally:
            for future in pending:
                future.cancel()

    def __exit__(self, *exc_info) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
