"""The execute stage, local runner: plan, render and write every image, chunk by chunk, in-process
or on a process pool.

Each image depends only on ``(seed, split, index)`` and the inputs, so outputs are byte-identical
for any ``num_workers``. The worker processes (`ImageWorkers`) are started when the run starts, so
they import their modules while the parent reads the inputs; they learn the split pools from
``OUT/.progress/jobs.pickle`` (`Progress.write_jobs`), read once per worker when its first chunk
comes. A worker writes a chunk's JPEG and XML files, then the chunk's part file
(`spatule_synth.generate.progress`), which marks it finished; `LocalRunner.finished_chunks` yields the
chunks in order as they finish, so the parent assembles the shards while the workers go on.
Workers are started with ``spawn`` (no fork of a process that may hold threads) and never import
TensorFlow. At most a few chunks per worker are in flight, so memory does not grow with the number
of images, and a worker that dies (killed by the system, out of memory) stops the run with
`WorkerDiedError` instead of hanging it. `spatule_synth.generate.beam_runner` runs the same chunks on Apache
Beam.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator, Sequence

from spatule_synth.core import storage
from spatule_synth.generate.background_cache import BackgroundCache
from spatule_synth.core.config import GenerateConfig, PlacementConfig
from spatule_synth.generate.grid import plan_image
from spatule_synth.generate.plan import SplitPool, redraw_placement
from spatule_synth.generate.progress import Chunk, Progress
from spatule_synth.generate.render import render
from spatule_synth.generate.sample_files import SampleOutputs, WrittenSample, write_sample
from spatule_synth.generate.worker_pool import end_workers, spawn_pool, start_worker

CHUNKS_IN_FLIGHT_PER_WORKER = 4


class RunnerError(RuntimeError):
    """The runner could not write every image; the message says how to go on."""


class WorkerDiedError(RunnerError):
    """A worker process ended abruptly; the run cannot finish."""


@dataclasses.dataclass(frozen=True)
class SplitJob:
    """What one split's images need: its pool, where its files go, and its first ``source_id``."""

    pool: SplitPool
    outputs: SampleOutputs
    first_source_id: int


@dataclasses.dataclass(frozen=True)
class ImageSettings:
    """What a worker needs to plan, render and write images: the placement settings, the seed,
    the run folder (for part files) and its background cache budget."""

    placement: PlacementConfig
    seed: int
    output_dir: str
    cache_mb: int = 1024
    layers: bool = False  # track which paste wrote each pixel (--scene_outputs=layers)

    @classmethod
    def of(cls, config: GenerateConfig) -> "ImageSettings":
        return cls(config.placement, config.seed, config.output.output_dir, config.execution.cache_mb,
                   "layers" in config.output.scene_outputs)


class ChunkWriter:
    """Per-process state: the settings, each split's job, and one background cache for all."""

    def __init__(self, settings: ImageSettings, jobs: dict[str, SplitJob]) -> None:
        self.settings, self.jobs = settings, jobs
        self.cache = BackgroundCache(settings.placement.canvas_size, settings.cache_mb << 20)
        self.progress = Progress(settings.output_dir)

    def image(self, split: str, index: int) -> WrittenSample:
        job, placement, seed = self.jobs[split], self.settings.placement, self.settings.seed
        spec = plan_image(placement, seed, job.pool, index)
        canvas = self.cache.window(job.pool.backgrounds[spec.background], *spec.window)
        background = canvas.copy() if job.outputs.scene_folders.get("background") else None
        sample = render(spec, job.pool, canvas, placement.min_visible, placement.min_visibility,
                        lambda number, attempt, pasted: redraw_placement(
                            placement, seed, job.pool, spec, number, attempt, pasted), self.settings.layers)
        return write_sample(sample, job.pool, str(job.first_source_id + index), job.outputs, background)

    def __call__(self, chunk: Chunk) -> Chunk:
        """Write the chunk's images, then its part file."""
        samples = [self.image(chunk.split, index) for index in range(chunk.start, chunk.stop)]
        self.progress.write_part(chunk, samples)
        return chunk


def load_chunk_writer(jobs_path: str) -> ChunkWriter:
    """The `ChunkWriter` of the settings and jobs a run stored with `Progress.write_jobs`."""
    settings, jobs = pickle.loads(storage.read_bytes(jobs_path))
    return ChunkWriter(settings, jobs)


_WRITERS: dict[str, ChunkWriter] = {}  # in a worker: its writer, by jobs file


def _init_worker(parent: int) -> None:
    start_worker(parent)  # dies with the parent: no orphan writes while a --resume run starts


def _started() -> None:
    """A task that makes the pool start one more process now."""


def _write_chunk(jobs_path: str, chunk: Chunk) -> Chunk:
    writer = _WRITERS.get(jobs_path)
    if writer is None:
        _WRITERS.clear()
        writer = _WRITERS[jobs_path] = load_chunk_writer(jobs_path)
    return writer(chunk)


class ImageWorkers(contextlib.AbstractContextManager):
    """The image worker processes of a local run: ``count`` of them, or none for one (the
    parent writes the images itself). `start` starts them at once, so their start-up (a spawned
    interpreter importing NumPy, OpenCV and SciPy: about half a second) overlaps the read
    stage; otherwise they start with the first chunk."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self.count > 1 and self._executor is None:
            self._executor = spawn_pool(self.count, _init_worker, (os.getpid(),))
            for _ in range(self.count):  # the pool starts one process per task submitted
                self._executor.submit(_started)

    def executor(self) -> ProcessPoolExecutor:
        self.start()
        assert self._executor is not None, "one worker: no pool"
        return self._executor

    def end_after_failure(self) -> None:
        end_workers(self._executor)

    def __exit__(self, *exc_info) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


class LocalRunner(contextlib.AbstractContextManager):
    """The processes that write images; one pool for the whole run (started once, and only if
    some chunk is left to write).

    ``with LocalRunner(settings, workers, jobs, chunks, pending) as runner:
    for chunk in runner.finished_chunks(): ...``: ``workers`` (`ImageWorkers`) belong to the
    caller, who may have started them earlier; ``pending`` are the chunks to write (the others
    were finished by an earlier run).
    """

    def __init__(self, settings: ImageSettings, workers: ImageWorkers, jobs: dict[str, SplitJob],
                 chunks: Sequence[Chunk], pending: set[Chunk]):
        self.settings, self.jobs, self.chunks = settings, jobs, list(chunks)
        progress = Progress(settings.output_dir)
        self._pending = set(pending)
        self.workers = min(workers.count, max(1, len(self._pending)))
        self._pool = workers
        self._in_process = ChunkWriter(settings, jobs) if self.workers <= 1 else None
        self._executor = None if self._in_process or not self._pending else workers.executor()
        self._jobs_path = progress.write_jobs((settings, jobs)) if self._executor else ""

    def finished_chunks(self) -> Iterator[Chunk]:
        """Every chunk, in order, once its part file is written (now, if pending)."""
        if self._executor is None:
            for chunk in self.chunks:
                yield self._in_process(chunk) if chunk in self._pending else chunk
            return
        pending: collections.deque = collections.deque()  # chunks done before, and futures
        in_flight, limit = 0, CHUNKS_IN_FLIGHT_PER_WORKER * self.workers
        try:
            for chunk in self.chunks:
                if chunk in self._pending:
                    pending.append(self._executor.submit(_write_chunk, self._jobs_path, chunk))
                    in_flight += 1
                else:
                    pending.append(chunk)
                while pending and (in_flight >= limit or isinstance(pending[0], Chunk)):
                    item = pending.popleft()
                    in_flight -= not isinstance(item, Chunk)
                    yield _finished(item)
            while pending:
                yield _finished(pending.popleft())
        except BrokenProcessPool as error:
            self._pool.end_after_failure()
            raise WorkerDiedError(
                "a worker process died abruptly (killed, or out of memory?); the images finished "
                "so far are kept: rerun with --resume, and fewer --num_workers or a smaller "
                "--cache_mb") from error
        finally:
            for future in pending:
                if not isinstance(future, Chunk):
                    future.cancel()

    def __exit__(self, *exc_info) -> None:
        return None  # the workers are the caller's (`ImageWorkers`)


def _finished(item) -> Chunk:
    return item if isinstance(item, Chunk) else item.result()
