"""The exhaustive layout at scale: images/s and peak memory of ``--layout=grid``.

    .venv/bin/python bench/bench_grid.py [--foregrounds 100] [--backgrounds 200] [--positions 20]
                                         [--scales 0.01,0.1,1] [--workers 2] [--keep]

The classic foreground/background/mask recipe: ``--foregrounds`` cutouts (about 80x80 px, class
``tag``, in ``--no_flip_classes`` so that there is no mirror) on ``--backgrounds`` photos of
160x160 px at ``--positions`` positions each: 100 x 200 x 20 = 400,000 images at the full scale.
The inputs are made first, once, from the embedded demo photos (``spatule_synth/demo_data``):
backgrounds are 160x160 windows of them; foregrounds are other windows with a random blob as
alpha, written as alpha PNG cutouts (``--cutout_dirs``). Each run is one subprocess::

    python generate.py --cutout_dirs=TMP/fg --background_dirs=TMP/bg --output_dir=TMP/run \\
        --layout=grid --grid_positions=K --canvas_size=160 --eval_fraction=0 --blend=alpha \\
        --no_flip_classes=tag --scene_outputs=mask --num_workers=W --num_shards=16 --seed=0

``--scales`` runs the grid on that fraction of the backgrounds (0.01 x 200 = 2 photos: 4,000
images; 0.1: 40,000; 1: 400,000), so the table shows whether the rate holds and memory stays flat
as the grid grows. Measured per run, as in `bench_scale` (whose /proc sampler this reuses): wall
time (start-up included), img/s, the marginal rate between consecutive sizes, and the peak RSS of
the process tree, of the main process and of the largest worker; plus the disk the run wrote.
Each output is deleted once measured unless ``--keep``. The full scale writes about 5 GB and takes
tens of minutes on 2 cores; the machine is shared, so compare the rates within one invocation.
"""

import argparse
import os
import shutil
import sys
import tempfile

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scale import git_revision, measured_subprocess  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_PHOTOS = os.path.join(ROOT, "spatule_synth", "demo_data", "backgrounds")
CANVAS = 160


def make_inputs(folder: str, foregrounds: int, backgrounds: int, seed: int = 0) -> None:
    """``folder/bg/*.jpg`` (160x160 windows of the demo photos) and ``folder/fg/tag/*.png``
    (other windows, about 80x80, with a random blob as alpha)."""
    rng = np.random.default_rng(seed)
    photos = [cv2.imread(os.path.join(DEMO_PHOTOS, name)) for name in sorted(os.listdir(DEMO_PHOTOS))]
    os.makedirs(os.path.join(folder, "bg"), exist_ok=True)
    os.makedirs(os.path.join(folder, "fg", "tag"), exist_ok=True)
    for index in range(backgrounds):
        photo = photos[index % len(photos)]
        side = int(rng.integers(160, 480))
        y, x = int(rng.integers(0, photo.shape[0] - side)), int(rng.integers(0, photo.shape[1] - side))
        window = cv2.resize(photo[y:y + side, x:x + side], (CANVAS, CANVAS), interpolation=cv2.INTER_AREA)
        cv2.imwrite(os.path.join(folder, "bg", f"bg{index:04d}.jpg"), window, [cv2.IMWRITE_JPEG_QUALITY, 92])
    for index in range(foregrounds):
        photo = photos[(index + 1) % len(photos)]
        width, height = int(rng.integers(60, 81)), int(rng.integers(60, 81))
        y, x = int(rng.integers(0, photo.shape[0] - height)), int(rng.integers(0, photo.shape[1] - width))
        pixels = photo[y:y + height, x:x + width]
        alpha = np.zeros((height, width), np.uint8)
        centre = (width // 2, height // 2)
        for _ in range(4):  # a blob: a few overlapping ellipses around the centre
            axes = (int(rng.integers(width // 6, width // 2)), int(rng.integers(height // 6, height // 2)))
            offset = (int(rng.integers(-width // 6, width // 6 + 1)), int(rng.integers(-height // 6, height // 6 + 1)))
            cv2.ellipse(alpha, (centre[0] + offset[0], centre[1] + offset[1]), axes,
                        float(rng.uniform(0, 180)), 0, 360, 255, -1)
        cv2.imwrite(os.path.join(folder, "fg", "tag", f"fg{index:03d}.png"), np.dstack([pixels, alpha]))


def disk_mb(folder: str) -> float:
    total = 0
    for path, _, names in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(path, name)) for name in names)
    return total / 2 ** 20


def run_grid(tmp: str, backgrounds: int, positions: int, workers: int, keep: bool) -> dict:
    """One measured ``generate --layout=grid`` on the first ``backgrounds`` photos."""
    inputs = os.path.join(tmp, f"bg-{backgrounds}")
    if not os.path.isdir(inputs):
        os.makedirs(inputs)
        for name in sorted(os.listdir(os.path.join(tmp, "bg")))[:backgrounds]:
            os.link(os.path.join(tmp, "bg", name), os.path.join(inputs, name))
    output = os.path.join(tmp, f"run-{backgrounds}")
    command = [sys.executable, "generate.py", f"--cutout_dirs={os.path.join(tmp, 'fg')}",
               f"--background_dirs={inputs}", f"--output_dir={output}", "--overwrite", "--layout=grid",
               f"--grid_positions={positions}", f"--canvas_size={CANVAS}", "--eval_fraction=0",
               "--blend=alpha", "--no_flip_classes=tag", "--scene_outputs=mask",
               f"--num_workers={workers}", "--num_shards=16", "--seed=0"]
    print(f"  {backgrounds} backgrounds ...", end="", file=sys.stderr, flush=True)
    seconds, memory = measured_subprocess(command, output + ".log", f"{backgrounds} backgrounds")
    images = sum(1 for name in os.listdir(os.path.join(output, "images", "train")) if name.endswith(".jpg"))
    written = disk_mb(output)
    print(f" {images} images in {seconds:.1f} s", file=sys.stderr, flush=True)
    if not keep:
        shutil.rmtree(output)
    return {"images": images, "seconds": seconds, "tree_mb": memory.tree_kb / 1024,
            "main_mb": memory.main_kb / 1024, "child_mb": memory.child_kb / 1024, "disk_mb": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--foregrounds", type=int, default=100)
    parser.add_argument("--backgrounds", type=int, default=200)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--scales", default="0.01,0.1,1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_grid-")
    try:
        make_inputs(tmp, args.foregrounds, args.backgrounds)
        runs = [run_grid(tmp, max(1, round(args.backgrounds * float(scale))), args.positions, args.workers,
                         args.keep) for scale in args.scales.split(",")]
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"grid layout, {args.foregrounds} foregrounds x backgrounds x {args.positions} positions, "
          f"{CANVAS}x{CANVAS}, --blend=alpha --scene_outputs=mask, {args.workers} workers "
          f"(git {git_revision()}, {os.cpu_count()} cores)\n")
    print("| images | seconds | img/s | marginal img/s | peak tree RSS MB | peak main MB | "
          "peak largest worker MB | disk MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for index, run in enumerate(runs):
        marginal = "-"
        if index:
            previous = runs[index - 1]
            marginal = f"{(run['images'] - previous['images']) / (run['seconds'] - previous['seconds']):.0f}"
        print(f"| {run['images']} | {run['seconds']:.1f} | {run['images'] / run['seconds']:.0f} | {marginal} | "
              f"{run['tree_mb']:.0f} | {run['main_mb']:.0f} | {run['child_mb']:.0f} | {run['disk_mb']:.0f} |")


if __name__ == "__main__":
    main()
