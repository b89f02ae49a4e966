"""Where the output goes: local disk vs an in-memory file system (``memory://``), 1 vs 2 workers,
local runner vs Beam, in one invocation.

    .venv/bin/python bench/bench_storage.py [--images 1000] [--rounds 3] [--workers 2] [--skip_beam]

Every measured run is its own subprocess from the repository root, on the embedded demo photos::

    python generate.py --flagfile=configs/demo.flags --output_dir=OUT --overwrite --noreport \\
        --num_images=N --num_workers=W --seed=13 --num_shards=4 [--runner=beam ...]

with ``OUT`` a folder under /tmp (deleted after each run) or ``memory://bench``: fsspec's
in-memory store, which lives in the generating process and disappears with it, so the run pays for
every object written through the storage layer (one request per file, no rename) but not for a
disk or a network. With 2 workers the memory store is *staged*: no other process sees it, so the
workers write into a local folder and the parent sends each finished chunk's files to the store
(`spatule_synth.generate.run.StagedChunks`); with 1 worker the images go straight to the store,
as they would to a bucket.

The configurations are run in turn, ``--rounds`` times (round-robin, so that the machine's noise
spreads over all of them); the table gives each one's median wall time (start-up included),
img/s, and the peak RSS of its process tree (`bench_scale.TreeMemory`: a memory store holds the
whole output in the parent). Compare ratios within one table: this 2-core machine is shared.
"""

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scale import generate_command, git_revision, measured_subprocess  # noqa: E402


def configurations(workers: int, beam: bool) -> list[tuple[str, str, int]]:
    """(output kind, workers, runner) of every measured run."""
    found = [("disk", 1, "local"), ("memory", 1, "local"), ("disk", workers, "local"), ("memory", workers, "local")]
    if beam:
        found += [("disk", workers, "beam"), ("memory", workers, "beam")]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip_beam", action="store_true")
    args = parser.parse_args()
    runs = configurations(args.workers, not args.skip_beam)
    seconds: dict[tuple, list[float]] = {run: [] for run in runs}
    peaks: dict[tuple, list[float]] = {run: [] for run in runs}
    with tempfile.TemporaryDirectory(prefix="bench_storage_") as tmp:
        for round_number in range(args.rounds):
            for run in runs:
                kind, workers, runner = run
                output = os.path.join(tmp, "out") if kind == "disk" else "memory://bench"
                name = f"{kind}-{runner}-w{workers}"
                print(f"round {round_number + 1}: {name} ...", end="", file=sys.stderr, flush=True)
                took, memory = measured_subprocess(generate_command(output, args.images, workers, runner),
                                                   os.path.join(tmp, "log"), name)
                print(f" {took:.1f} s", file=sys.stderr, flush=True)
                seconds[run].append(took)
                peaks[run].append(memory.tree_kb / 1024)
                shutil.rmtree(os.path.join(tmp, "out"), ignore_errors=True)
    print(f"{args.images} images of the demo preset, median of {args.rounds} rounds; "
          f"Python {platform.python_version()}, {os.cpu_count()} cores; git {git_revision()}\n")
    print("| output | runner | workers | median s | img/s | speed vs local disk (same runner, workers) | peak tree RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        kind, workers, runner = run
        median = statistics.median(seconds[run])
        disk = statistics.median(seconds[("disk", workers, runner)])
        print(f"| {'memory://' if kind == 'memory' else 'local disk'} | {runner} | {workers} | {median:.1f} | "
              f"{args.images / median:.0f} | {disk / median:.2f}x | {max(peaks[run]):.0f} |")


if __name__ == "__main__":
    main()
