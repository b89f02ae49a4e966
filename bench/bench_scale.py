"""Scale: generation speed and peak memory against the number of images, and local vs Beam runners.

    .venv/bin/python bench/bench_scale.py [--sizes 500,5000,20000] [--workers 2] [--compare_n 2000]
                                          [--skip_beam] [--quick]

Every measured run is its own subprocess, started from the repository root on the embedded demo
photos (``configs/demo.flags``: the few camera photos of ``spatule_synth/demo_data``)::

    python generate.py --flagfile=configs/demo.flags --output_dir=TMP/RUN --overwrite --noreport \\
        --num_images=N --num_workers=W --seed=13 --num_shards=4 \\
        [--runner=beam --beam_pipeline_options="--runner=DirectRunner \\
            --direct_running_mode=multi_processing --direct_num_workers=W"]

Each output goes to a temporary folder under /tmp and is deleted as soon as it has been measured
(about 130 kB per image: 20,000 images take 2.5 GB). One unmeasured 20-image run of each runner
goes first, so that the first measured run does not pay for a cold disk cache.

Measured for each run:

* wall time of the subprocess (Python and library start-up included), img/s = N / seconds, and,
  between consecutive sizes, the marginal rate (N2 - N1) / (t2 - t1), which leaves the fixed
  start-up out: flat scaling means the marginal rate holds up as N grows;
* memory, by reading /proc every 0.1 s: the process tree is the subprocess and its descendants
  (found through the ppid field of /proc/*/stat), each one's RSS is VmRSS of /proc/PID/status.
  Reported: the peak of the sum of RSS over the tree (the honest total; pages shared between
  processes count once per process, so it errs high), the peak RSS of the main process, and the
  peak RSS of the largest single descendant (worker). Flat memory means these do not grow with N.

Experiments, each printed as a Markdown table ready for README.md:

1. local runner, ``--workers`` workers, at each of ``--sizes``;
2. local runner, 1 worker vs ``--workers`` workers, at ``--compare_n`` images;
3. Beam DirectRunner (multi_processing, ``--workers`` workers) vs the local runner at
   ``--compare_n`` (the same local run as in 2); the two outputs' images/, XML and TFRecord
   shards are compared by sha256 ("identical: yes/no") before they are deleted.

Ratios are taken between runs of one invocation, back to back: this 2-core machine is shared and
noisy, so compare ratios rather than absolute numbers across invocations. The sampling thread
costs about one /proc scan (a few ms) per 0.1 s.

Duration with the defaults on 2 cores: about 3-5 minutes (the 20,000-image run is most of it, at
roughly 250 img/s); ``--quick`` (sizes 100,300, compare_n 200) is a smoke test of about 20 s.
Progress goes to stderr, the report to stdout.
"""

import argparse
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILE = "configs/demo.flags"
SHARDS = 4
POLL_SECONDS = 0.1
BEAM_OPTIONS = ("--runner=DirectRunner --direct_running_mode=multi_processing "
                "--direct_num_workers={}")
COMPARED = ("images", "annotations")


@dataclass(frozen=True)
class Run:
    """One measured ``generate`` subprocess."""

    runner: str
    images: int
    workers: int
    seconds: float
    tree_mb: float
    main_mb: float
    child_mb: float
    most_processes: int

    @property
    def rate(self) -> float:
        return self.images / self.seconds

    @property
    def label(self) -> str:
        if self.runner == "beam":
            return f"Beam DirectRunner, multi_processing, {self.workers} workers"
        return f"local, {self.workers} worker{'s' if self.workers > 1 else ''}"


# --- /proc sampling ----------------------------------------------------------------------------

def _children_by_parent() -> dict[int, list[int]]:
    """ppid -> pids of every process visible now; processes that vanish mid-scan are skipped."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:  # gone between listdir and open, or not ours to read
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so cut at the last ")".
        fields = stat[stat.rfind(b")") + 1:].split()
        if len(fields) < 2:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _descendants(root: int) -> list[int]:
    children = _children_by_parent()
    found, todo = [], list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` in kB; 0 if it has exited (or is a zombie, which has no VmRSS line)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Poller(threading.Thread):
    """Calls `sample` every POLL_SECONDS from `start` until `stop` (and once at each end)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._stop_event = threading.Event()

    def sample(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        self.sample()
        while not self._stop_event.wait(POLL_SECONDS):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class TreeMemory(Poller):
    """Polls the RSS of a process and of all its descendants until `stop`; keeps the peaks (kB)."""

    def __init__(self, root: int):
        super().__init__()
        self.root = root
        self.tree_kb = self.main_kb = self.child_kb = self.most_processes = 0

    def sample(self) -> None:
        main = _rss_kb(self.root)
        others = [_rss_kb(pid) for pid in _descendants(self.root)]
        self.main_kb = max(self.main_kb, main)
        self.child_kb = max(self.child_kb, *others, 0)
        self.tree_kb = max(self.tree_kb, main + sum(others))
        self.most_processes = max(self.most_processes, 1 + sum(1 for rss in others if rss))


# --- runs --------------------------------------------------------------------------------------

def generate_command(output: str, images: int, workers: int, runner: str) -> list[str]:
    command = [sys.executable, "generate.py", f"--flagfile={FLAGFILE}", f"--output_dir={output}",
               "--overwrite", "--noreport", f"--num_images={images}", f"--num_workers={workers}",
               "--seed=13", f"--num_shards={SHARDS}"]  # the preset's seed: both sides get identities
    if runner == "beam":
        command += ["--runner=beam", f"--beam_pipeline_options={BEAM_OPTIONS.format(workers)}"]
    return command


def measured_subprocess(command: list[str], log: str, name: str) -> tuple[float, "TreeMemory"]:
    """Run ``command`` from the repository root, its output to ``log``, sampling the memory of its
    process tree; (wall seconds, the sampler). A failure ends the bench with the log's tail."""
    with open(log, "wb") as log_handle:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=log_handle, stderr=subprocess.STDOUT)
        memory = TreeMemory(process.pid)
        memory.start()
        status = process.wait()
        seconds = time.perf_counter() - start
        memory.stop()
    if status:
        with open(log, encoding="utf-8", errors="replace") as handle:
            tail = handle.readlines()[-20:]
        sys.exit(f"\n{name} failed with status {status}:\n{''.join(tail)}")
    return seconds, memory


def measure(tmp: str, runner: str, images: int, workers: int,
            keep: bool = False) -> tuple[Run, str]:
    """Run one ``generate`` subprocess; returns its measures and its output folder (deleted
    unless ``keep``)."""
    name = f"{runner}-w{workers}-n{images}"
    output, log = os.path.join(tmp, name), os.path.join(tmp, name + ".log")
    print(f"  {name} ...", end="", file=sys.stderr, flush=True)
    seconds, memory = measured_subprocess(generate_command(output, images, workers, runner), log, name)
    os.remove(log)
    print(f" {seconds:.1f} s", file=sys.stderr, flush=True)
    if not keep:
        shutil.rmtree(output)
    return Run(runner, images, workers, seconds, memory.tree_kb / 1024, memory.main_kb / 1024,
               memory.child_kb / 1024, memory.most_processes), output


def digests(output: str) -> dict[str, str]:
    """sha256 of every file under images/ and annotations/, by path relative to ``output``."""
    found = {}
    for sub in COMPARED:
        for folder, _, files in os.walk(os.path.join(output, sub)):
            for name in files:
                path = os.path.join(folder, name)
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                found[os.path.relpath(path, output)] = digest.hexdigest()
    return found


# --- printing ----------------------------------------------------------------------------------

def _marginal(previous: Run, run: Run) -> str:
    extra = run.seconds - previous.seconds
    return f"{(run.images - previous.images) / extra:.0f}" if extra > 0 else "n/a"


def _memory_cells(run: Run) -> str:
    child = f"{run.child_mb:.0f}" if run.child_mb else "- (no worker process)"
    return f"{run.tree_mb:.0f} | {run.main_mb:.0f} | {child}"


def scale_table(runs: list[Run]) -> list[str]:
    lines = ["| images | runner | seconds | img/s | marginal img/s | peak tree RSS MB | "
             "peak main MB | peak largest worker MB |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for index, run in enumerate(runs):
        marginal = (f"{_marginal(runs[index - 1], run)} ({runs[index - 1].images} -> {run.images})"
                    if index else "-")
        lines.append(f"| {run.images} | {run.label} | {run.seconds:.1f} | {run.rate:.0f} | "
                     f"{marginal} | {_memory_cells(run)} |")
    return lines


def compare_table(runs: list[Run], reference: Run) -> list[str]:
    lines = [f"| run ({reference.images} images) | seconds | img/s | img/s vs {reference.label} | "
             "peak tree RSS MB | peak main MB | peak largest worker MB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run in runs:
        lines.append(f"| {run.label} | {run.seconds:.1f} | {run.rate:.0f} | "
                     f"{run.rate / reference.rate:.2f} | {_memory_cells(run)} |")
    return lines


def git_revision() -> str:
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return revision + (" (with uncommitted changes)" if dirty else "")


def memory_total_mb() -> float:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return float("nan")


def image_counts(text: str) -> list[int]:
    sizes = sorted({int(size) for size in text.split(",") if size.strip()})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive image counts, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=image_counts, default=[500, 5000, 20000],
                        help="image counts of the scaling runs (local runner)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the scaling runs, of "
                        "the many-worker side of the 1-vs-many comparison, and of Beam")
    parser.add_argument("--compare_n", type=int, default=2000,
                        help="images of the 1-vs-many-workers and local-vs-Beam comparisons")
    parser.add_argument("--skip_beam", action="store_true", help="leave the Beam run out")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: --sizes 100,300 --compare_n 200")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.compare_n = [100, 300], 200
    if args.workers < 1 or args.compare_n < 1:
        parser.error("--workers and --compare_n must be at least 1")
    workers = args.workers

    with tempfile.TemporaryDirectory(prefix="bench_scale.", dir="/tmp") as tmp:
        print("warm-up (not measured)", file=sys.stderr)
        measure(tmp, "local", 20, workers)
        if not args.skip_beam:
            measure(tmp, "beam", 20, workers)
        print("scaling, local runner", file=sys.stderr)
        scaling = [measure(tmp, "local", size, workers)[0] for size in args.sizes]
        print(f"comparisons at {args.compare_n} images", file=sys.stderr)
        single = measure(tmp, "local", args.compare_n, 1)[0]
        local, local_output = measure(tmp, "local", args.compare_n, workers, keep=True)
        beam, identical, compared = None, None, 0
        if not args.skip_beam:
            beam, beam_output = measure(tmp, "beam", args.compare_n, workers, keep=True)
            ours, theirs = digests(local_output), digests(beam_output)
            compared = len(ours)
            identical = bool(ours) and ours == theirs
            differing = sorted(path for path in set(ours) | set(theirs)
                               if ours.get(path) != theirs.get(path))
            shutil.rmtree(beam_output)
        shutil.rmtree(local_output)

    print("## Scale: generate on the embedded demo data (configs/demo.flags)")
    print()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    local_command = generate_command("TMP/RUN", "N", "W", "local")
    beam_flags = generate_command("TMP/RUN", "N", "W", "beam")[len(local_command):]
    print(f"each run, from {ROOT}: {shlex.join(local_command)}")
    print(f"  Beam runs add: {shlex.join(beam_flags)}")
    print(f"machine: os.cpu_count() = {os.cpu_count()}, {memory_total_mb():.0f} MB RAM, "
          f"Python {platform.python_version()}, {platform.platform()}; git {git_revision()}")
    print()
    print(f"### Images vs time and memory (local runner, {workers} workers)")
    print()
    print("\n".join(scale_table(scaling)))
    first, last = scaling[0], scaling[-1]
    if len(scaling) > 1:
        marginal = _marginal(scaling[-2], last)
        marginal += " img/s" if marginal != "n/a" else " (the larger run was not slower: noise)"
        print()
        print(f"From {first.images} to {last.images} images ({last.images / first.images:.0f}x): "
              f"peak tree RSS {first.tree_mb:.0f} -> {last.tree_mb:.0f} MB "
              f"({last.tree_mb / first.tree_mb:.2f}x), main {first.main_mb:.0f} -> "
              f"{last.main_mb:.0f} MB ({last.main_mb / first.main_mb:.2f}x), largest worker "
              f"{first.child_mb:.0f} -> {last.child_mb:.0f} MB "
              f"({last.child_mb / first.child_mb:.2f}x); end-to-end img/s {first.rate:.0f} -> "
              f"{last.rate:.0f}, marginal {marginal} (last step; {last.most_processes} processes "
              "at most).")
    print()
    print(f"### Runners at {args.compare_n} images")
    print()
    print("\n".join(compare_table([single, local] + ([beam] if beam else []), local)))
    print()
    print(f"{workers} workers vs 1: {local.rate / single.rate:.2f}x img/s "
          f"({single.seconds:.1f} s -> {local.seconds:.1f} s).")
    if beam:
        print(f"Beam DirectRunner vs local, {workers} workers each: {beam.rate / local.rate:.2f}x "
              f"img/s ({local.seconds:.1f} s -> {beam.seconds:.1f} s), peak tree RSS "
              f"{local.tree_mb:.0f} -> {beam.tree_mb:.0f} MB.")
        print(f"identical: {'yes' if identical else 'no'} (sha256 of {compared} files under "
              f"{' and '.join(f'{sub}/' for sub in COMPARED)}: JPEGs, XML, TFRecord shards, "
              "label map)")
        if not identical:
            more = " ..." if len(differing) > 10 else ""
            print(f"differing ({len(differing)}): {', '.join(differing[:10])}{more}")
    else:
        print("Beam: skipped (--skip_beam).")
    print()
    print("Note: every ratio above compares runs made back to back in this one invocation; the "
          f"{os.cpu_count()}-core machine is shared and noisy, so absolute numbers move between "
          "invocations (compare ratios). Times are whole subprocesses, start-up included; tree "
          "RSS sums VmRSS over the process tree every 0.1 s, so shared pages count once per "
          "process (it errs high) and a peak shorter than 0.1 s can be missed.")
    print()
    print("README row:")
    print()
    growth = f"peak tree RSS {first.tree_mb:.0f} MB at n={first.images}"
    if len(scaling) > 1:
        growth += f" vs {last.tree_mb:.0f} MB at n={last.images}"
    sizes_text = ", ".join(f"{run.images}: {run.rate:.0f}" for run in scaling)
    beam_text = (f"; Beam DirectRunner {beam.rate:.0f} img/s ({beam.rate / local.rate:.2f}x local, "
                 f"identical: {'yes' if identical else 'no'})" if beam else "")
    print(f"| `generate` scale, demo data, {workers} workers, n = "
          f"{', '.join(str(size) for size in args.sizes)} | `.venv/bin/python bench/bench_scale.py"
          f"{' ' + shlex.join(sys.argv[1:]) if sys.argv[1:] else ''}` | img/s {sizes_text}; "
          f"{growth}; at n={args.compare_n}: 1 worker {single.rate:.0f}, {workers} workers "
          f"{local.rate:.0f} img/s ({local.rate / single.rate:.2f}x){beam_text} |")


if __name__ == "__main__":
    main()
