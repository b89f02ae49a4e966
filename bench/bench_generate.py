"""Generation speed: spatule_synth vs the seed notebook's decode-per-image loop, in one run.

    .venv/bin/python bench/bench_generate.py [--images 2000] [--naive_images 200] [--workers 0]
                                             [--backgrounds 8] [--repeats 3]

Inputs (made once, in a temporary folder): 8 labelled 3264x2448 camera-like JPEGs with 2 tags
each (~70x40 px) and 8 tag-free ones (``--backgrounds``: more, so that they no longer all stay
decoded in the workers' caches). Then, on the same inputs:

* spatule_synth ``generate`` with ``--blend=seamless_normal`` and with ``--blend=feather``
  (1-3 tags per 640x640 image, JPEG + XML + TFRecord written, all cores unless --workers), each
  run end to end for ``--images`` and for 3x as many: the first rate includes the fixed start-up
  (reading and checking the inputs, starting the workers, their first decode of each photo,
  the manifest), the second is the marginal rate, ``2 n / (t(3 n) - t(n))``;
* the naive loop of the seed notebook: for every output image, decode a full labelled photo and a
  full background photo, cut one tag, seamless-clone it, write JPEG + XML (one process).

The three are measured in ``--repeats`` interleaved rounds (this machine is shared and noisy:
one round can be 30 % off); prints each round, the medians, the ratios of the medians, and the peak
RSS of this process and of its (largest) children.
"""

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from camera_photos import HEIGHT, WIDTH, camera_photo  # noqa: E402

from spatule_synth.core.boxes import Box  # noqa: E402
from spatule_synth.core.config import GenerateConfig  # noqa: E402
from spatule_synth.generate.run import run_generate  # noqa: E402
from spatule_synth.formats.voc import VocAnnotation, VocObject, read_voc, voc_bytes, write_voc  # noqa: E402


def make_inputs(folder: str, rng: np.random.Generator, background_count: int = 8) -> tuple[str, str]:
    labelled, backgrounds = os.path.join(folder, "labelled"), os.path.join(folder, "backgrounds")
    os.makedirs(labelled)
    os.makedirs(backgrounds)
    for index in range(8):
        pixels = camera_photo(rng)
        objects = []
        for k in range(2):
            x0, y0 = 800 + 900 * k, int(rng.integers(500, 2000))
            pixels[y0:y0 + 40, x0:x0 + 70] = 240
            pixels[y0 + 10:y0 + 30, x0 + 8:x0 + 62:12] = 20
            objects.append(VocObject("tag", Box(x0, y0, x0 + 70, y0 + 40)))
        Image.fromarray(pixels).save(os.path.join(labelled, f"IMAG{index:04d}.JPG"), quality=92)
        write_voc(VocAnnotation(f"IMAG{index:04d}.JPG", WIDTH, HEIGHT, objects=tuple(objects)),
                  os.path.join(labelled, f"IMAG{index:04d}.xml"))
    for index in range(background_count):
        Image.fromarray(camera_photo(rng)).save(os.path.join(backgrounds, f"BG{index:04d}.JPG"),
                                                quality=92)
    return labelled, backgrounds


def ours(labelled: str, backgrounds: str, output: str, images: int, blend: str, workers: int) -> float:
    """Seconds for one whole ``generate`` run."""
    config = GenerateConfig.from_settings(input_dirs=(labelled,), background_dirs=(backgrounds,), output_dir=output,
                            num_images=images, blend=(blend,), num_workers=workers, seed=1, report=False)
    start = time.perf_counter()
    run_generate(config)
    return time.perf_counter() - start


def rates(labelled: str, backgrounds: str, output: str, images: int, blend: str,
          workers: int) -> tuple[float, float]:
    """End-to-end img/s for ``images``, and the marginal img/s between ``images`` and 3x that."""
    small = ours(labelled, backgrounds, output + "-small", images, blend, workers)
    large = ours(labelled, backgrounds, output + "-large", 3 * images, blend, workers)
    shutil.rmtree(output + "-small")
    shutil.rmtree(output + "-large")
    return images / small, 2 * images / (large - small)


def naive(labelled: str, backgrounds: str, output: str, images: int) -> float:
    """The seed notebook's loop: two full-photo decodes per output image."""
    rng = np.random.default_rng(0)
    photos = sorted(f for f in os.listdir(labelled) if f.endswith(".JPG"))
    plates = sorted(os.listdir(backgrounds))
    os.makedirs(output)
    start = time.perf_counter()
    for index in range(images):
        name = photos[index % len(photos)]
        photo = cv2.imread(os.path.join(labelled, name))
        tag = read_voc(os.path.join(labelled, name[:-4] + ".xml")).objects[0].box
        x0, y0, x1, y1 = tag.voc_ints()
        patch = photo[y0 - 8:y1 + 8, x0 - 8:x1 + 8]
        plate = cv2.imread(os.path.join(backgrounds, plates[index % len(plates)]))
        wx, wy = int(rng.integers(0, WIDTH - 640)), int(rng.integers(0, HEIGHT - 640))
        canvas = np.ascontiguousarray(plate[wy:wy + 640, wx:wx + 640])
        px, py = int(rng.integers(60, 580)), int(rng.integers(60, 580))
        mask = np.full(patch.shape[:2], 255, np.uint8)
        canvas = cv2.seamlessClone(patch, canvas, mask, (px, py), cv2.NORMAL_CLONE)
        cv2.imwrite(os.path.join(output, f"{index:06d}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
        box = Box(px - patch.shape[1] // 2, py - patch.shape[0] // 2,
                  px + patch.shape[1] // 2, py + patch.shape[0] // 2)
        with open(os.path.join(output, f"{index:06d}.xml"), "wb") as handle:
            handle.write(voc_bytes(VocAnnotation(f"{index:06d}.jpg", 640, 640,
                                                 objects=(VocObject("tag", box),))))
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--naive_images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--backgrounds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of (seamless, feather, naive); medians are reported")
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        labelled, backgrounds = make_inputs(tmp, np.random.default_rng(0), args.backgrounds)
        ours(labelled, backgrounds, os.path.join(tmp, "warm-up"), 16, "feather", 1)
        for repeat in range(args.repeats):
            seamless = rates(labelled, backgrounds, os.path.join(tmp, f"seamless{repeat}"), args.images,
                             "seamless_normal", args.workers)
            feather = rates(labelled, backgrounds, os.path.join(tmp, f"feather{repeat}"), args.images,
                            "feather", args.workers)
            loop = naive(labelled, backgrounds, os.path.join(tmp, f"naive{repeat}"), args.naive_images)
            rounds.append((seamless, feather, loop))
            print(f"round {repeat + 1}: seamless {seamless[0]:.1f} / {seamless[1]:.1f} img/s, feather "
                  f"{feather[0]:.1f} / {feather[1]:.1f} img/s (end to end / marginal), naive "
                  f"{loop:.1f} img/s: seamless end to end {seamless[0] / loop:.1f}x", flush=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    workers = args.workers or os.cpu_count()

    def median(values) -> float:
        return float(np.median(list(values)))

    seamless = (median(r[0][0] for r in rounds), median(r[0][1] for r in rounds))
    feather = (median(r[1][0] for r in rounds), median(r[1][1] for r in rounds))
    loop = median(r[2] for r in rounds)
    print(f"inputs: 8 labelled + {args.backgrounds} background JPEGs of {WIDTH}x{HEIGHT}; {workers} "
          f"workers; medians of {len(rounds)} rounds")
    n = args.images
    print(f"spatule_synth, seamless_normal: n={n} end to end {seamless[0]:6.1f} img/s, "
          f"marginal ({n} -> {3 * n}) {seamless[1]:6.1f} img/s")
    print(f"spatule_synth, feather:         n={n} end to end {feather[0]:6.1f} img/s, "
          f"marginal ({n} -> {3 * n}) {feather[1]:6.1f} img/s")
    print(f"naive decode-per-image loop,    n={args.naive_images}: {loop:6.1f} img/s")
    print(f"ratio to naive, end to end: seamless {seamless[0] / loop:5.1f}x, feather "
          f"{feather[0] / loop:5.1f}x; marginal: seamless {seamless[1] / loop:5.1f}x, feather "
          f"{feather[1] / loop:5.1f}x")
    ratios = sorted(r[0][0] / r[2] for r in rounds)
    print(f"seamless end to end / naive, per round: {', '.join(f'{x:.1f}x' for x in ratios)}")
    print(f"peak RSS: main process {own:.0f} MB, largest worker {children:.0f} MB")


if __name__ == "__main__":
    main()
