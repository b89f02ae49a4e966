"""Masks: the read stage with ``--mask=grabcut`` on the raccoon photos, serial vs a process pool vs
the mask cache.

    .venv/bin/python bench/bench_masks.py [--raccoon /work/shared/data/raccoon] [--workers 2]
                                          [--photos 100] [--use_truncated_cutouts]

Measures `spatule_synth.generate.sources.read_sources` (validate every labelled photo, refine every
box-only object's mask, cut the cutouts; the stage that runs before any image is generated) on the
labelImg raccoon data set (``RACCOON/images``, ``RACCOON/annotations``, the repository's
``annotations/raccoon_label_map.pbtxt``, the demo backgrounds), the same settings as::

    python generate.py --input_dirs=RACCOON/images --annotation_dirs=RACCOON/annotations \\
        --label_map=annotations/raccoon_label_map.pbtxt --mask=grabcut \\
        --background_dirs=spatule_synth/demo_data/backgrounds --num_workers=W ...

Runs, back to back, each in its own subprocess (the time is that of ``read_sources`` alone:
Python start-up and imports are left out, starting the pool's processes is in):

1. **serial**: ``--num_workers=1``, cache off (``SPATULE_SYNTH_MASK_CACHE=off``): the masks are made
   in the parent one after another, as before the pool existed;
2. **pool, cold cache**: ``--workers`` workers, an empty cache folder (every mask computed, and
   written to the cache);
3. **warm cache**: the same again: every mask read from the cache, no worker started;
4. **--mask=box**, for reference: the floor (reading and validating the photos, no refinement).

For each: seconds, the speed-up against the serial run, how many masks were computed and how many
read from the cache (counted from the cache folder's files and ``MaskJobs`` counters), and the peak
memory of the process tree (VmRSS summed over the subprocess and its workers every 0.1 s, as in
``bench/bench_scale.py``). "identical" compares, against the serial run, the SHA-256 of every
cutout (pixels, alpha, each part's mask) and the list of problems in order (kind, file, object,
reason: the manifest's problems), so any difference in a mask or in the order of the
``mask_fallback`` notes shows.

``--photos N`` uses the first N photos (in file-name order, through a folder of symbolic links) for
a quicker run; the default takes all 100 (about 2.5 minutes serial on this 2-core machine, noisy
because it is shared: compare the ratios of one invocation). Progress goes to stderr, the report to
stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)
sys.path.insert(0, BENCH)

from bench_scale import TreeMemory, git_revision, memory_total_mb  # noqa: E402

RACCOON = "/work/shared/data/raccoon"
LABEL_MAP = "annotations/raccoon_label_map.pbtxt"
BACKGROUNDS = "spatule_synth/demo_data/backgrounds"


# --- one measured run (in a subprocess) --------------------------------------------------------

def child(args: argparse.Namespace) -> None:
    """Time read_sources once; print one JSON line (seconds, digests, counts)."""
    from spatule_synth.core.config import ExecutionConfig, InputsConfig, PlacementConfig, SplitConfig
    from spatule_synth.core.problems import ProblemLog
    from spatule_synth.formats.label_map import read_label_map
    from spatule_synth.generate import mask_jobs, sources

    counts = {"hits": 0, "misses": 0}
    original_exit = mask_jobs.MaskJobs.__exit__

    def counting_exit(self, *exc_info):
        counts["hits"] += self.hits
        counts["misses"] += self.misses
        return original_exit(self, *exc_info)

    mask_jobs.MaskJobs.__exit__ = counting_exit
    inputs = InputsConfig(input_dirs=(args.images,), annotation_dirs=(args.annotations,),
                          label_map_path=LABEL_MAP, mask=args.mask, background_dirs=(BACKGROUNDS,),
                          use_truncated_cutouts=args.use_truncated_cutouts)
    label_map = read_label_map(inputs.label_map_path)
    problems = ProblemLog("skip")
    start = time.perf_counter()
    found = sources.read_sources(inputs, SplitConfig(), PlacementConfig(), label_map, problems,
                                 ExecutionConfig(num_workers=args.workers).worker_count)
    seconds = time.perf_counter() - start
    cutouts = hashlib.sha256()
    for cutout in found.cutouts:
        for array in (cutout.pixels, cutout.alpha, *(part.mask for part in cutout.parts)):
            cutouts.update(array.tobytes())
    listed = json.dumps([[p.kind, p.file, p.object_index, p.reason] for p in problems.problems])
    print(json.dumps({"seconds": seconds, "cutouts": len(found.cutouts),
                      "objects": sum(len(c.parts) for c in found.cutouts),
                      "fallbacks": sum(p.kind == "mask_fallback" for p in problems.problems),
                      "problems": len(problems.problems), "cutouts_sha256": cutouts.hexdigest(),
                      "problems_sha256": hashlib.sha256(listed.encode()).hexdigest(), **counts}))


def measure(name: str, images: str, annotations: str, mask: str, workers: int, cache: str,
            use_truncated: bool) -> dict:
    print(f"  {name} ...", end="", file=sys.stderr, flush=True)
    command = [sys.executable, os.path.abspath(__file__), "--child", f"--images={images}",
               f"--annotations={annotations}", f"--mask={mask}", f"--workers={workers}"]
    command += ["--use_truncated_cutouts"] if use_truncated else []
    env = dict(os.environ, SPATULE_SYNTH_MASK_CACHE=cache, TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        memory = TreeMemory(process.pid)
        memory.start()
        code = process.wait()
        memory.stop()
        out.seek(0)
        err.seek(0)
        if code:
            sys.stderr.write(err.read().decode(errors="replace")[-3000:])
            raise SystemExit(f"{name}: the run failed (exit status {code})")
        result = json.loads(out.read().decode().strip().splitlines()[-1])
    result.update(name=name, workers=workers, tree_mb=memory.tree_kb / 1024,
                  processes=memory.most_processes)
    print(f" {result['seconds']:.1f} s", file=sys.stderr)
    return result


@contextlib.contextmanager
def first_photos(raccoon: str, count: int | None):
    """(images, annotations) folders: the data set's, or links to its first ``count`` photos."""
    images, annotations = os.path.join(raccoon, "images"), os.path.join(raccoon, "annotations")
    names = sorted(name for name in os.listdir(images) if not name.startswith("."))
    if count is None or count >= len(names):
        yield images, annotations
        return
    with tempfile.TemporaryDirectory(prefix="bench_masks.") as tmp:
        linked_images, linked_xml = os.path.join(tmp, "images"), os.path.join(tmp, "annotations")
        os.makedirs(linked_images)
        os.makedirs(linked_xml)
        for name in names[:count]:
            os.symlink(os.path.join(images, name), os.path.join(linked_images, name))
            xml = os.path.splitext(name)[0] + ".xml"
            if os.path.exists(os.path.join(annotations, xml)):
                os.symlink(os.path.join(annotations, xml), os.path.join(linked_xml, xml))
        yield linked_images, linked_xml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raccoon", default=RACCOON, help="the raccoon data set's folder")
    parser.add_argument("--workers", type=int, default=2, help="workers of the pool runs")
    parser.add_argument("--photos", type=int, default=None, help="only the first N photos")
    parser.add_argument("--use_truncated_cutouts", action="store_true",
                        help="also refine objects cut by the photo's edge (more masks)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--annotations", help=argparse.SUPPRESS)
    parser.add_argument("--mask", default="grabcut", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.workers < 2:
        parser.error("--workers must be at least 2 (the serial run is the 1-worker one)")

    with first_photos(args.raccoon, args.photos) as (images, annotations), \
            tempfile.TemporaryDirectory(prefix="bench_masks_cache.") as cache:
        photos = len([n for n in os.listdir(images) if not n.startswith(".")])
        print(f"{photos} photos; serial, pool (cold cache), warm cache, --mask=box", file=sys.stderr)
        truncated = args.use_truncated_cutouts
        serial = measure("serial: 1 worker, no cache", images, annotations, "grabcut", 1, "off",
                         truncated)
        cold = measure(f"pool: {args.workers} workers, cold cache", images, annotations, "grabcut",
                       args.workers, cache, truncated)
        cached_files = sum(len(files) for _, _, files in os.walk(cache))
        warm = measure(f"warm cache ({args.workers} workers)", images, annotations, "grabcut",
                       args.workers, cache, truncated)
        box = measure("--mask=box (reference: no refinement)", images, annotations, "box", 1, "off",
                      truncated)
        cache_kb = sum(os.path.getsize(os.path.join(folder, name))
                       for folder, _, files in os.walk(cache) for name in files) / 1024

    def identical(run: dict) -> str:
        same = (run["cutouts_sha256"], run["problems_sha256"]) == (serial["cutouts_sha256"],
                                                                  serial["problems_sha256"])
        return "yes" if same else "**no**"

    print("## Masks: read stage with --mask=grabcut on the raccoon photos")
    print()
    print(f"command: {' '.join([os.path.relpath(sys.executable, ROOT), 'bench/bench_masks.py', *sys.argv[1:]])}")
    print(f"data: {photos} photos of {args.raccoon}, {serial['objects']} objects in "
          f"{serial['cutouts']} cutouts, {serial['misses']} GrabCut masks "
          f"({serial['fallbacks']} fell back to the whole box), {serial['problems']} problems")
    print(f"machine: os.cpu_count() = {os.cpu_count()}, {memory_total_mb():.0f} MB RAM, Python "
          f"{platform.python_version()}, {platform.platform()}; git {git_revision()}")
    print()
    print("| run | seconds | speed-up vs serial | masks computed | masks from cache | "
          "peak tree RSS MB | processes | identical to serial |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for run in (serial, cold, warm, box):
        same = "-" if run in (serial, box) else identical(run)
        print(f"| {run['name']} | {run['seconds']:.1f} | {serial['seconds'] / run['seconds']:.2f}x | "
              f"{run['misses']} | {run['hits']} | {run['tree_mb']:.0f} | {run['processes']} | {same} |")
    print()
    print(f"cache: {cached_files} files, {cache_kb:.0f} kB after the cold run. identical: the "
          "SHA-256 of every cutout's pixels, alpha and part masks, and of the problem list in "
          "order (kind, file, object, reason).")
    print("Note: the runs are back to back in one invocation on a shared machine; compare ratios "
          "rather than absolute seconds across invocations. Peak RSS: VmRSS summed over the "
          "process tree every 0.1 s (shared pages count once per process).")
    print()
    print("README row:")
    print()
    print(f"| read stage with `--mask=grabcut`, raccoon ({photos} photos, {serial['misses']} GrabCut "
          f"masks), serial vs {args.workers} workers vs the mask cache | `.venv/bin/python "
          f"bench/bench_masks.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}` | serial "
          f"{serial['seconds']:.1f} s; {args.workers} workers, cold cache {cold['seconds']:.1f} s "
          f"({serial['seconds'] / cold['seconds']:.2f}x); warm cache {warm['seconds']:.1f} s "
          f"({serial['seconds'] / warm['seconds']:.0f}x; `--mask=box` {box['seconds']:.1f} s); "
          f"identical: {identical(cold)} / {identical(warm)}; peak tree RSS {serial['tree_mb']:.0f} "
          f"/ {cold['tree_mb']:.0f} / {warm['tree_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
