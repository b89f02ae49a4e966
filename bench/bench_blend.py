"""Seamless cloning: spatule_synth's Poisson solver vs ``cv2.seamlessClone``, speed and pixels.

    .venv/bin/python bench/bench_blend.py [--repeats 200] [--sheet /tmp/seamless_sheet.png]

Speed: one tag-sized object (88x132 px plus the 8 px cutout margin, a white tag with dark
characters) pasted onto a 640x640 canvas, NORMAL and MIXED, ``--repeats`` times each, alternating
the two solvers so that the shared machine's noise hits both alike; reported as ms per object
(median of the repeats) for the solve alone (`clone_into_canvas` vs ``cv2.seamlessClone``, as
each is called) and for the whole blend step (`blend_into` with ``seamless_normal`` vs
``seamless_normal_opencv``: solve plus compositing inside the mask).

Pixels: every labelled cutout of the embedded demo data (`configs/demo.flags` inputs) pasted at
the centre of crops of the demo backgrounds with both solvers; reported: the mean absolute
difference between the two results inside the object (0-255 levels, per channel), per mode. A
contact sheet shows cutout | ours | OpenCV's for each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spatule_synth.core.config import InputsConfig, PlacementConfig, SplitConfig  # noqa: E402
from spatule_synth.core.images import read_image  # noqa: E402
from spatule_synth.formats.label_map import read_label_map  # noqa: E402
from spatule_synth.core.problems import ProblemLog  # noqa: E402
from spatule_synth.generate.blends import blend_into  # noqa: E402
from spatule_synth.generate.poisson import clone_into_canvas  # noqa: E402
from spatule_synth.generate.sources import read_sources  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = {"normal": cv2.NORMAL_CLONE, "mixed": cv2.MIXED_CLONE}


def tag(height=88, width=132, margin=8):
    pixels = np.full((height + 2 * margin, width + 2 * margin, 3), 80, np.uint8)
    pixels[margin:-margin, margin:-margin] = 232
    for k in range(4):
        x0 = margin + 12 + k * 30
        pixels[margin + 18:margin + 70, x0:x0 + 6] = 25
        pixels[margin + 18:margin + 24, x0:x0 + 22] = 25
    alpha = np.zeros(pixels.shape[:2], np.uint8)
    alpha[margin:-margin, margin:-margin] = 255
    return pixels, alpha


def opencv_clone(source, canvas, x, y, flags):
    mask = np.full(source.shape[:2], 255, np.uint8)
    center = (x + source.shape[1] // 2, y + source.shape[0] // 2)
    return cv2.seamlessClone(source, canvas, mask, center, flags)


def speed(repeats: int) -> None:
    rng = np.random.default_rng(0)
    canvas = np.clip(cv2.GaussianBlur(rng.integers(0, 256, (640, 640, 3)).astype(np.float32), (0, 0), 5)
                     * 0.5 + 70, 0, 255).astype(np.uint8)
    source, alpha = tag()
    x, y = 250, 260
    print("| step | mode | spatule_synth ms | OpenCV ms | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for mode, flags in FLAGS.items():
        ours, theirs, ours_blend, theirs_blend = [], [], [], []
        for _ in range(repeats):
            start = time.perf_counter()
            clone_into_canvas(source, canvas, x, y, mode)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            opencv_clone(source, canvas.copy(), x, y, flags)
            theirs.append(time.perf_counter() - start)
            work = canvas.copy()
            start = time.perf_counter()
            blend_into(work, source, alpha, x, y, f"seamless_{mode}")
            ours_blend.append(time.perf_counter() - start)
            work = canvas.copy()
            start = time.perf_counter()
            blend_into(work, source, alpha, x, y, f"seamless_{mode}_opencv")
            theirs_blend.append(time.perf_counter() - start)
        for step, a, b in (("solve", ours, theirs), ("blend_into", ours_blend, theirs_blend)):
            ma, mb = statistics.median(a) * 1e3, statistics.median(b) * 1e3
            print(f"| {step} | {mode} | {ma:.2f} | {mb:.2f} | {mb / ma:.2f}x |")


def pixels(sheet: str) -> None:
    inputs = InputsConfig(input_dirs=(os.path.join(REPO, "spatule_synth/demo_data/labelled"),),
                          background_dirs=(os.path.join(REPO, "spatule_synth/demo_data/backgrounds"),))
    sources = read_sources(inputs, SplitConfig(), PlacementConfig(), read_label_map(inputs.label_map_path),
                           ProblemLog("skip"))
    backgrounds = [read_image(b.path).pixels for b in sources.backgrounds]
    rows, differences = [], {mode: [] for mode in FLAGS}
    for index, cutout in enumerate(sources.cutouts):
        photo = backgrounds[index % len(backgrounds)]
        height, width = cutout.pixels.shape[:2]
        cy, cx = photo.shape[0] // 2, photo.shape[1] // 2
        canvas = photo[cy - 160:cy + 160, cx - 160:cx + 160].copy()
        x, y = 160 - width // 2, 160 - height // 2
        inside = cutout.alpha >= 128
        row = [cutout.pixels]
        for mode, flags in FLAGS.items():
            ours = clone_into_canvas(cutout.pixels, canvas, x, y, mode)
            theirs = opencv_clone(cutout.pixels, canvas.copy(), x, y, flags)[y:y + height, x:x + width]
            differences[mode].append(float(np.abs(ours.astype(int) - theirs.astype(int))[inside].mean()))
            row += [ours, theirs]
        rows.append(np.concatenate([cv2.resize(im, (96, 96 * height // width or 1)) for im in row], axis=1))
    for mode, values in differences.items():
        print(f"{mode}: mean |ours - OpenCV| inside the object over {len(values)} demo cutouts: "
              f"{statistics.mean(values):.1f} levels (max {max(values):.1f})")
    width = max(r.shape[1] for r in rows)
    image = np.concatenate([np.pad(r, ((2, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                            for r in rows])
    cv2.imwrite(sheet, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    print(f"contact sheet (cutout | ours normal | OpenCV normal | ours mixed | OpenCV mixed): {sheet}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--sheet", default="/tmp/seamless_sheet.png")
    args = parser.parse_args()
    speed(args.repeats)
    pixels(args.sheet)


if __name__ == "__main__":
    main()
