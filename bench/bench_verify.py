"""verify: time and peak memory of ``--mode=verify`` against the number of images, before and after
it streams (issue 13), and the leak audit's comparison of 1,000 x 1,000 cutouts.

    .venv/bin/python bench/bench_verify.py [--sizes 2000,20000] [--before 397f70c]
                                           [--old_limit_mb 6000] [--audit 1000] [--quick]

1. ``verify`` at each of ``--sizes``. A run is generated from the repository root on the embedded
   demo photos, in a temporary folder under /tmp (about 130 kB per image: 20,000 images take
   2.6 GB; deleted as soon as it has been verified)::

       python generate.py --flagfile=configs/demo.flags --output_dir=TMP/RUN --num_images=N \\
           --noreport --num_shards=4

   then verified twice, each a subprocess of its own::

       python generate.py --mode=verify --output_dir=TMP/RUN

   * *after*: run from the repository root (the working tree's code);
   * *before*: run from a temporary copy of the working tree's ``spatule_synth/`` and
     ``generate.py`` in which ``spatule_synth/modes/verify.py`` and ``spatule_synth/modes/split_from.py``
     are those of git revision ``--before`` (``git show REV:PATH``; default 397f70c, the last commit
     before verify streamed): the old verify, everything else equal.

   Measured: wall time of the subprocess (Python and TensorFlow start-up, about 5 s, included),
   img/s = N / seconds, the marginal img/s between two sizes ((N2 - N1) / (t2 - t1), which leaves
   the start-up out), and peak memory: every 0.1 s the bench reads VmRSS and VmHWM (the kernel's
   own high-water mark of RSS, so a peak between two reads is not missed) of the verify process
   from /proc/PID/status and keeps the largest (verify is one process: no worker to add). The
   old verify keeps every decoded example (about 1.35 MB per 640x640 image), so it would need
   some 27 GB at 20,000 images: when a verify process passes ``--old_limit_mb`` of RSS the bench
   kills it (SIGKILL to that pid) and reports "killed" with the time it had run. Each verify's
   table is checked ("records" passed = N, "verify: all checks passed").

2. The leak audit's comparison, in this process: ``--audit`` eval cutouts against as many train
   cutouts (fingerprints of synthetic leg-tag photos of tests/test_near_duplicates.py, 4 photos
   of each tag, alternately eval and train: tags of one design are the worst case, most pairs look
   alike). *After*: blocks of eval cutouts against all train cutouts with
   ``near_duplicates.cross_distances``, as verify does, timed over all rows. *Before*: the old
   loop, ``min((distance(e, t), train_id) for t in train)`` per eval cutout, timed on
   ``--audit_sample`` eval cutouts and extrapolated linearly to all; those rows are compared with
   the new ones for equality, bit for bit.

Duration on 2 cores with the defaults: about 8 minutes (the 20,000-image run and its verifies are
most of it: generate about 250 img/s, the new verify about 100 img/s); ``--quick`` (sizes 100,300, audit 200) is a smoke test of about 2
minutes. Ratios are taken between runs of one invocation: the machine is shared and noisy.
Progress goes to stderr, the report to stdout.
"""

import argparse
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_scale import Poller, git_revision, image_counts, memory_total_mb  # noqa: E402

FLAGFILE = "configs/demo.flags"
SHARDS = 4
BEFORE = "397f70c"  # the last commit before verify streamed
OLD_FILES = ("spatule_synth/modes/verify.py", "spatule_synth/modes/split_from.py")


@dataclass(frozen=True)
class Verify:
    """One measured ``verify`` subprocess."""

    code: str  # "before" or "after"
    images: int
    seconds: float
    peak_mb: float
    killed: bool
    passed: bool  # exit status 0, "verify: all checks passed", records == images

    @property
    def rate(self) -> float:
        return self.images / self.seconds


class PeakMemory(Poller):
    """Polls VmRSS and VmHWM of one process until `stop`; kills it past ``limit_kb`` of RSS."""

    def __init__(self, pid: int, limit_kb: int):
        super().__init__()
        self.pid, self.limit_kb = pid, limit_kb
        self.peak_kb = 0
        self.killed = False

    def sample(self) -> None:
        values = {}
        try:
            with open(f"/proc/{self.pid}/status", "rb") as handle:
                for line in handle:
                    if line.startswith((b"VmRSS:", b"VmHWM:")):
                        values[line[:5]] = int(line.split()[1])
        except (OSError, ValueError):  # exited (a zombie has no Vm lines either)
            return
        self.peak_kb = max(self.peak_kb, *values.values(), 0)
        if values.get(b"VmRSS", 0) > self.limit_kb and not self.killed:
            self.killed = True
            os.kill(self.pid, signal.SIGKILL)


# --- runs --------------------------------------------------------------------------------------

def generate_command(output: str, images) -> list[str]:
    return [sys.executable, "generate.py", f"--flagfile={FLAGFILE}", f"--output_dir={output}",
            f"--num_images={images}", "--noreport", f"--num_shards={SHARDS}"]


def verify_command(output: str) -> list[str]:
    return [sys.executable, "generate.py", "--mode=verify", f"--output_dir={output}"]


def generate(tmp: str, images: int) -> str:
    output = os.path.join(tmp, f"run-{images}")
    print(f"  generate {images} ...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(generate_command(output, images), cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"\ngenerate {images} failed with status {done.returncode}:\n{done.stderr[-3000:]}")
    print(f" {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return output


def before_tree(tmp: str, revision: str) -> str:
    """A copy of the working tree's package and generate.py with OLD_FILES of ``revision``."""
    tree = os.path.join(tmp, "before")
    shutil.copytree(os.path.join(ROOT, "spatule_synth"), os.path.join(tree, "spatule_synth"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "generate.py"), tree)
    for path in OLD_FILES:
        text = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT, check=True,
                              capture_output=True).stdout
        with open(os.path.join(tree, path), "wb") as handle:
            handle.write(text)
    return tree


def verify(code: str, cwd: str, output: str, images: int, limit_mb: float) -> Verify:
    print(f"  verify {images}, {code} ...", end="", file=sys.stderr, flush=True)
    log = output + f".{code}.log"
    with open(log, "wb") as log_handle:
        start = time.perf_counter()
        process = subprocess.Popen(verify_command(output), cwd=cwd, stdout=log_handle,
                                   stderr=subprocess.STDOUT)
        memory = PeakMemory(process.pid, int(limit_mb * 1024))
        memory.start()
        status = process.wait()
        seconds = time.perf_counter() - start
        memory.stop()
    with open(log, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    os.remove(log)
    records = re.search(r"^\s*records\s+(\d+)\s+(\d+)\s*$", text, re.MULTILINE)
    passed = (status == 0 and "verify: all checks passed" in text and records is not None
              and int(records.group(1)) == images)
    if not passed and not memory.killed:
        print(f"\nverify {images} ({code}) did not pass (status {status}):\n{text[-3000:]}",
              file=sys.stderr)
    print(f" {seconds:.1f} s, peak {memory.peak_kb / 1024:.0f} MB"
          + (" (killed)" if memory.killed else ""), file=sys.stderr, flush=True)
    return Verify(code, images, seconds, memory.peak_kb / 1024, memory.killed, passed)


# --- the leak audit ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Audit:
    eval_count: int
    train_count: int
    fingerprint_seconds: float
    new_seconds: float
    old_sample: int
    old_sample_seconds: float
    equal: bool
    looks_alike: int  # eval cutouts within NEAR_DUPLICATE_THRESHOLD of a train cutout

    @property
    def old_estimate(self) -> float:
        return self.old_sample_seconds * self.eval_count / self.old_sample


def audit(count: int, sample: int) -> Audit:
    import numpy as np
    from test_near_duplicates import photo_set

    from spatule_synth.generate.near_duplicates import (NEAR_DUPLICATE_THRESHOLD, cross_distances,
                                                        distance, fingerprint)
    from spatule_synth.modes.verify import _AUDIT_BLOCK

    print(f"  leak audit {count} x {count}: photographing tags ...", end="", file=sys.stderr,
          flush=True)
    crops, _ = photo_set("tag", 0, objects=(2 * count + 3) // 4, photos=4)
    start = time.perf_counter()
    prints = [fingerprint(crop) for crop in crops[:2 * count]]
    fingerprint_seconds = time.perf_counter() - start
    evals = [(f"eval#{i}", p) for i, p in enumerate(prints[0::2])]
    train = [(f"train#{i}", p) for i, p in enumerate(prints[1::2])]
    train_ids, train_prints = [t for t, _ in train], [p for _, p in train]

    print(" new ...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    rows, closest = [], []
    for first in range(0, len(evals), _AUDIT_BLOCK):
        block = evals[first:first + _AUDIT_BLOCK]
        matrix = cross_distances([p for _, p in block], train_prints)
        rows += list(matrix)
        closest += [min(zip(row.tolist(), train_ids), default=None) for row in matrix]
    new_seconds = time.perf_counter() - start

    print(f" {new_seconds:.1f} s; old on {sample} rows ...", end="", file=sys.stderr, flush=True)
    picked = np.linspace(0, len(evals) - 1, sample).round().astype(int)
    start = time.perf_counter()
    old_closest = [min(((distance(evals[i][1], train_print), train_id)
                        for train_id, train_print in train), default=None) for i in picked]
    old_seconds = time.perf_counter() - start
    print(f" {old_seconds:.1f} s", file=sys.stderr, flush=True)
    equal = all(closest[i] == old for i, old in zip(picked, old_closest))
    equal = equal and all(np.array_equal(rows[i], [distance(evals[i][1], t) for t in train_prints])
                          for i in picked[:3])
    looks_alike = sum(1 for c in closest if c is not None and c[0] <= NEAR_DUPLICATE_THRESHOLD)
    return Audit(len(evals), len(train), fingerprint_seconds, new_seconds, sample, old_seconds,
                 equal, looks_alike)


# --- printing ----------------------------------------------------------------------------------

def _cells(run: Verify | None, limit_mb: float) -> str:
    if run is None:
        return "- | - | -"
    if run.killed:
        return f"killed after {run.seconds:.0f} s | - | > {limit_mb:.0f} (killed)"
    return f"{run.seconds:.1f} | {run.rate:.0f} | {run.peak_mb:.0f}"


def _marginal(first: Verify, last: Verify) -> str:
    if first.killed or last.killed or last.seconds <= first.seconds:
        return "n/a"
    return f"{(last.images - first.images) / (last.seconds - first.seconds):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=image_counts, default=[2000, 20000],
                        help="image counts of the verified runs")
    parser.add_argument("--before", default=BEFORE, help="git revision of the old verify.py and "
                        "split_from.py")
    parser.add_argument("--old_limit_mb", type=float, default=6000,
                        help="a verify process past this RSS is killed (the old one at large n)")
    parser.add_argument("--audit", type=int, default=1000,
                        help="eval (and train) cutouts of the leak-audit comparison; 0: skip it")
    parser.add_argument("--audit_sample", type=int, default=25,
                        help="eval cutouts the old audit loop is timed on (then extrapolated)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: --sizes 100,300 --audit 200 --audit_sample 5")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.audit, args.audit_sample = [100, 300], 200, 5
    args.audit_sample = max(1, min(args.audit_sample, args.audit))

    results: dict[tuple[int, str], Verify] = {}
    with tempfile.TemporaryDirectory(prefix="bench_verify.", dir="/tmp") as tmp:
        old_tree = before_tree(tmp, args.before)
        trees = {"before": old_tree, "after": ROOT}
        print("warm-up (not measured)", file=sys.stderr)
        warm = generate(tmp, 20)
        for code, tree in trees.items():
            verify(code, tree, warm, 20, args.old_limit_mb)
        shutil.rmtree(warm)
        for size in args.sizes:
            print(f"{size} images", file=sys.stderr)
            output = generate(tmp, size)
            for code, tree in trees.items():
                results[size, code] = verify(code, tree, output, size, args.old_limit_mb)
            shutil.rmtree(output)  # the big runs go as soon as they are measured
    audit_result = audit(args.audit, args.audit_sample) if args.audit > 0 else None

    print("## verify: before and after streaming (demo data, 4 shards)")
    print()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"each run, from {ROOT}: {shlex.join(generate_command('TMP/RUN', 'N'))}")
    print(f"each verify: {shlex.join(verify_command('TMP/RUN'))} (after: from {ROOT}; before: "
          f"from a copy with {', '.join(OLD_FILES)} of {args.before})")
    print(f"machine: os.cpu_count() = {os.cpu_count()}, {memory_total_mb():.0f} MB RAM, "
          f"Python {platform.python_version()}, {platform.platform()}; git {git_revision()}")
    print()
    print("| images | verify | seconds | img/s | peak RSS MB | checks |")
    print("| ---: | --- | ---: | ---: | ---: | --- |")
    for size in args.sizes:
        for code in ("before", "after"):
            run = results[size, code]
            checks = "killed" if run.killed else ("all passed" if run.passed else "FAILED")
            label = f"before ({args.before})" if code == "before" else "after (streaming)"
            print(f"| {size} | {label} | {_cells(run, args.old_limit_mb)} | {checks} |")
    print()
    first, last = args.sizes[0], args.sizes[-1]
    after_first, after_last = results[first, "after"], results[last, "after"]
    before_first, before_last = results[first, "before"], results[last, "before"]
    summary = []
    if len(args.sizes) > 1:
        summary.append(f"After, {first} -> {last} images: peak RSS {after_first.peak_mb:.0f} -> "
                       f"{after_last.peak_mb:.0f} MB ({after_last.peak_mb / after_first.peak_mb:.2f}x), "
                       f"marginal {_marginal(after_first, after_last)} img/s.")
        if not before_first.killed and not before_last.killed:
            summary.append(f"Before: peak RSS {before_first.peak_mb:.0f} -> {before_last.peak_mb:.0f} MB, "
                           f"marginal {_marginal(before_first, before_last)} img/s.")
        elif not before_first.killed:
            summary.append(f"Before: {before_first.peak_mb:.0f} MB at {first} images; at {last} "
                           f"killed past {args.old_limit_mb:.0f} MB after {before_last.seconds:.0f} s "
                           f"(about {(before_first.peak_mb - after_first.peak_mb) / first:.2f} MB "
                           "more per image than after: every decoded example is kept).")
    if not before_first.killed:
        summary.append(f"At {first} images: {before_first.seconds:.1f} s -> {after_first.seconds:.1f} s, "
                       f"peak RSS {before_first.peak_mb:.0f} -> {after_first.peak_mb:.0f} MB.")
    print(" ".join(summary))
    if audit_result is not None:
        a = audit_result
        print()
        print(f"### Leak audit, {a.eval_count} eval x {a.train_count} train cutouts (synthetic tags "
              "of one design, 4 photos per tag)")
        print()
        print(f"fingerprints: {a.fingerprint_seconds:.1f} s for {a.eval_count + a.train_count}; after "
              f"(cross_distances in blocks of rows): {a.new_seconds:.1f} s for all rows; before (a "
              f"distance() per pair): {a.old_sample_seconds:.1f} s for {a.old_sample} rows, so about "
              f"{a.old_estimate:.0f} s for all ({a.old_estimate / a.new_seconds:.0f}x); the sampled "
              f"rows' closest train cutouts and distances equal: {'yes' if a.equal else 'NO'}; "
              f"{a.looks_alike} eval cutouts look like a train cutout.")
    print()
    print("Note: times are whole subprocesses, Python and TensorFlow start-up included; peak RSS is "
          "the largest VmRSS / VmHWM read from /proc every 0.1 s. The machine is shared and noisy: "
          "compare runs of one invocation.")
    print()
    print("README row:")
    print()
    sizes_text = " / ".join(f"{size:,}" for size in args.sizes)
    after_text = " / ".join(f"{results[size, 'after'].rate:.0f}" for size in args.sizes)
    after_memory = " / ".join(f"{results[size, 'after'].peak_mb:.0f}" for size in args.sizes)
    before_parts = []
    for size in args.sizes:
        run = results[size, "before"]
        before_parts.append(f"killed past {args.old_limit_mb:.0f} MB after {run.seconds:.0f} s"
                            if run.killed else f"{run.rate:.0f} img/s, {run.peak_mb:.0f} MB")
    audit_text = ""
    if audit_result is not None:
        audit_text = (f"; leak audit {audit_result.eval_count:,} x {audit_result.train_count:,} tag "
                      f"cutouts {audit_result.new_seconds:.0f} s vs about "
                      f"{audit_result.old_estimate:.0f} s pair by pair (same distances)")
    print(f"| `verify` streaming, demo runs of {sizes_text} images (4 shards), before vs after; "
          f"leak audit | `.venv/bin/python bench/bench_verify.py"
          f"{' ' + shlex.join(sys.argv[1:]) if sys.argv[1:] else ''}` | after {after_text} img/s, "
          f"peak RSS {after_memory} MB; before {' / '.join(before_parts)}{audit_text} |")


if __name__ == "__main__":
    main()
