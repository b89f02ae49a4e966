"""``--runner=beam``: the same chunks of images written by an Apache Beam pipeline.

The pipeline is ``Create(chunks) | Reshuffle | ParDo(write chunk)``: each element is one chunk
(`spatule_synth.generate.progress.Chunk`), written by the very `spatule_synth.generate.execute.ChunkWriter` the local
runner uses (plan, render, JPEG + XML, then the chunk's part file). The ``Reshuffle`` spreads the
chunks over the workers instead of fusing them into the step that lists them. When the pipeline has
finished, the launching process assembles the shards, manifest lines and COCO files from the part
files in index order, exactly as with the local runner, so images, XML and shards are
byte-identical to a local run of the same flags, and ``--resume`` works across runners.

``--beam_pipeline_options`` is passed to Beam as is (default: the DirectRunner in multi-processing
mode on ``--num_workers`` processes, or all cores). The DirectRunner runs on Beam's Python
FnApiRunner, which honours ``--direct_running_mode`` and ``--direct_num_workers``: Beam's own
DirectRunner would first download the Go Prism runner from GitHub and, where it can, run every
worker in the launching process (Prism's LOOPBACK environment), which ignores both options and
leaves an empty ``/tmp/beam-temp*`` folder behind (`runner_for`). ``--runner=PrismRunner`` still
asks for Prism. On Flink, Spark or Dataflow every worker must
reach ``--output_dir`` and the input files (bucket URLs: `spatule_synth.core.storage`, or a shared
file system at the same paths), and have spatule_synth installed (``--setup_file`` or a custom
container). The workers load the split pools (cutout pixels included) from
``OUT/.progress/jobs.pickle`` (`Progress.write_jobs`, as the local runner's workers do) rather than
from the pipeline graph. For an output store no other process sees (``memory://``) the workers
write into the parent's staging folder instead (`spatule_synth.generate.run.StagedChunks`).

Apache Beam is imported only by this module, which is imported only for ``--runner=beam``: the
local runner's start-up does not pay for it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from typing import Iterator, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

from spatule_synth.core.config import ExecutionConfig
from spatule_synth.generate.execute import ChunkWriter, ImageSettings, RunnerError, SplitJob, load_chunk_writer
from spatule_synth.generate.progress import Chunk, Progress


class BeamRunError(RunnerError):
    """The Beam pipeline failed; the chunks it finished are kept for ``--resume``."""


class _WriteChunks(beam.DoFn):
    """Writes each chunk it receives; the pools are loaded once per worker (``setup``)."""

    def __init__(self, jobs_path: str) -> None:
        self.jobs_path = jobs_path
        self.writer: ChunkWriter | None = None

    def setup(self) -> None:
        import cv2
        cv2.setNumThreads(1)  # Beam already runs one worker per core
        self.writer = load_chunk_writer(self.jobs_path)

    def process(self, element: tuple[str, int, int]) -> Iterator[tuple[str, int, int]]:
        assert self.writer is not None
        self.writer(Chunk(*element))
        yield element


def pipeline_options(execution: ExecutionConfig) -> PipelineOptions:
    """``--beam_pipeline_options`` as Beam `PipelineOptions` (see the module docstring)."""
    arguments = shlex.split(execution.beam_pipeline_options)
    if not arguments:
        arguments = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                     f"--direct_num_workers={execution.worker_count}"]
    return PipelineOptions(arguments)


_DIRECT_RUNNER_NAMES = {"directrunner", "direct", "switchingdirectrunner"}


def runner_for(options: PipelineOptions) -> PipelineRunner | str:
    """The runner for ``options``: the DirectRunner (Beam's default) as the FnApiRunner, any other
    runner as named (`beam.Pipeline` builds it)."""
    name = options.view_as(StandardOptions).runner
    if name is not None and name.lower() not in _DIRECT_RUNNER_NAMES:
        return name
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    # What Beam's DirectRunner gives the FnApiRunner when it does not try Prism first.
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


class BeamRunner(contextlib.AbstractContextManager):
    """Same interface as `spatule_synth.generate.execute.LocalRunner`; the pipeline runs to its end before
    the first chunk is handed over."""

    def __init__(self, settings: ImageSettings, execution: ExecutionConfig, jobs: dict[str, SplitJob],
                 chunks: Sequence[Chunk], pending: set[Chunk]):
        self.settings, self.execution, self.jobs, self.chunks = settings, execution, jobs, list(chunks)
        self.pending = set(pending)
        self.progress = Progress(settings.output_dir)

    def finished_chunks(self) -> Iterator[Chunk]:
        pending = [chunk for chunk in self.chunks if chunk in self.pending]
        if pending:
            self._run(pending)
        for chunk in self.chunks:
            if chunk in self.pending and not self.progress.is_done(chunk):
                raise BeamRunError(f"the Beam pipeline ended without writing images "
                                   f"{chunk.start}-{chunk.stop - 1} of {chunk.split}; rerun with "
                                   "--resume")
            yield chunk

    def __exit__(self, *exc_info) -> None:
        return None  # the pipeline ends within `finished_chunks`

    def _run(self, pending: list[Chunk]) -> None:
        jobs_path = self.progress.write_jobs((self.settings, self.jobs))
        elements = [(chunk.split, chunk.start, chunk.stop) for chunk in pending]
        try:
            options = pipeline_options(self.execution)
            with _importable_by_workers(), beam.Pipeline(runner=runner_for(options), options=options) as p:
                _ = (p | "chunks" >> beam.Create(elements)
                     | "spread over workers" >> beam.Reshuffle()
                     | "write images" >> beam.ParDo(_WriteChunks(jobs_path)))
        except Exception as error:  # Beam wraps worker errors in its own types
            raise BeamRunError(f"the Beam pipeline failed: {_first_line(error)}. The chunks it "
                               "finished are kept: fix the cause and rerun with --resume") from error


@contextlib.contextmanager
def _importable_by_workers() -> Iterator[None]:
    """Let the DirectRunner's worker processes import spatule_synth from wherever it was loaded."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, previous]))
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    # Beam puts the worker's traceback first and the original error on a line of its own.
    errors = [line.strip() for line in lines if "Error" in line.split(":")[0]]
    return (errors[-1] if errors else lines[0] if lines else type(error).__name__)[:500]

