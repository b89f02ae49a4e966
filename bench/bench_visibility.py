"""Visibility: how recognisable pasted objects are, per blend mode, and what --min_visibility costs.

    .venv/bin/python bench/bench_visibility.py [--flagfile configs/demo.flags] [--num_images 200]
                                               [--sheet /tmp/visibility_sheet.png]

Runs the plan and render stages of a preset in-process (no files written) with the visibility
check recording every labelled paste's score instead of acting on it (`spatule_synth.generate.visibility`),
then prints, per blend mode, the score quantiles and the share of placements under each candidate
threshold, and writes a contact sheet: the lowest-scoring pastes and a sample around each
threshold, each as cutout | written pixels | the same on the canvas around it, with its score, so
a person can judge where "still the object" ends. A second pass renders the same images with the
preset's real ``--min_visibility`` and reports the share of placements re-drawn and dropped (the
number the README quotes).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from spatule_synth import cli  # noqa: E402
from spatule_synth.generate import render as render_module  # noqa: E402
from spatule_synth.generate.background_cache import BackgroundCache  # noqa: E402
from spatule_synth.formats.label_map import read_label_map  # noqa: E402
from spatule_synth.generate.plan import plan_sample, redraw_placement  # noqa: E402
from spatule_synth.core.problems import ProblemLog  # noqa: E402
from spatule_synth.generate.sources import read_sources  # noqa: E402
from spatule_synth.generate.split import SPLITS, images_per_split  # noqa: E402
from spatule_synth.generate.run import split_pools  # noqa: E402
from spatule_synth.generate.visibility import visibility  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flagfile", default="configs/demo.flags")
    parser.add_argument("--num_images", type=int, default=200)
    parser.add_argument("--sheet", default="/tmp/visibility_sheet.png")
    args = parser.parse_args()
    flags.FLAGS([sys.argv[0], f"--flagfile={args.flagfile}", f"--num_images={args.num_images}",
                 "--output_dir=/tmp/unused"])
    config = cli.generate_config()
    sources = read_sources(config.inputs, config.split, config.placement,
                           read_label_map(config.inputs.label_map_path), ProblemLog("skip"))
    counts = images_per_split(config.output.num_images, config.split.eval_fraction)
    pools = split_pools(config.split, config.seed, sources, counts)
    placement, seed = config.placement, config.seed
    cache = BackgroundCache(placement.canvas_size, config.execution.cache_mb << 20)
    recorded: list[tuple[float, str, np.ndarray, np.ndarray]] = []
    blend_of_call: list[str] = []

    def recording(written, cutout, mask):
        score = visibility(written, cutout, mask)
        if np.count_nonzero(mask) >= 16:
            ys, xs = np.nonzero(mask)
            crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
            recorded.append((score, blend_of_call[-1], cutout[crop].copy(), written[crop].copy()))
        return 1.0  # never act: every first draw is kept and measured

    original_blend = render_module.blend_into

    def remembering_blend(canvas, pixels, alpha, x, y, blend):
        blend_of_call.append(blend)
        return original_blend(canvas, pixels, alpha, x, y, blend)

    render_module.visibility, render_module.blend_into = recording, remembering_blend
    for split in SPLITS:
        for index in range(counts[split]):
            spec = plan_sample(placement, seed, pools[split], index)
            canvas = cache.window(pools[split].backgrounds[spec.background], *spec.window)
            render_module.render(spec, pools[split], canvas, placement.min_visible, 1.0)
    render_module.visibility, render_module.blend_into = visibility, original_blend
    print(f"{len(recorded)} labelled pastes of {args.flagfile} ({args.num_images} images)")
    print("| blend | pastes | p5 | p25 | median | " + " | ".join(f"< {t}" for t in THRESHOLDS) + " |")
    print("| --- " * (5 + len(THRESHOLDS)) + "|")
    for blend in sorted({r[1] for r in recorded}) + ["all"]:
        scores = np.array([r[0] for r in recorded if blend in ("all", r[1])])
        q = np.percentile(scores, [5, 25, 50])
        shares = " | ".join(f"{np.mean(scores < t):.1%}" for t in THRESHOLDS)
        print(f"| {blend} | {len(scores)} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.2f} | {shares} |")
    write_sheet(recorded, args.sheet)
    print(f"contact sheet: {args.sheet}")

    redrawn = dropped = placements = 0
    for split in SPLITS:
        for index in range(counts[split]):
            spec = plan_sample(placement, seed, pools[split], index)
            canvas = cache.window(pools[split].backgrounds[spec.background], *spec.window)
            sample = render_module.render(
                spec, pools[split], canvas, placement.min_visible, placement.min_visibility,
                lambda n, a, done, spec=spec, pool=pools[split]: redraw_placement(
                    placement, seed, pool, spec, n, a, done))
            placements += sum(not p.distractor for p in sample.spec.placements) + sample.invisible
            redrawn += sample.redrawn
            dropped += sample.invisible
    print(f"with --min_visibility={placement.min_visibility}: {redrawn} of {placements} labelled "
          f"placements re-drawn ({redrawn / max(placements, 1):.1%}), {dropped} dropped")


def write_sheet(recorded, path: str) -> None:
    """Rows of cutout | written, lowest scores first, then 4 around each threshold."""
    import cv2
    ordered = sorted(recorded, key=lambda r: r[0])
    chosen = ordered[:12]
    for threshold in THRESHOLDS:
        near = sorted(ordered, key=lambda r: abs(r[0] - threshold))[:4]
        chosen += sorted(near, key=lambda r: r[0])
    tiles = []
    for score, blend, cutout, written in chosen:
        pair = [cv2.resize(im, (96, int(96 * im.shape[0] / max(im.shape[1], 1)) or 1),
                           interpolation=cv2.INTER_NEAREST) for im in (cutout, written)]
        height = max(p.shape[0] for p in pair)
        row = np.full((height + 18, 96 * 2 + 4, 3), 255, np.uint8)
        row[18:18 + pair[0].shape[0], :96] = pair[0]
        row[18:18 + pair[1].shape[0], 100:] = pair[1]
        cv2.putText(row, f"{score:.2f} {blend}", (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        tiles.append(row)
    columns = 6
    width = max(t.shape[1] for t in tiles)
    rows = []
    for start in range(0, len(tiles), columns):
        group = tiles[start:start + columns]
        height = max(t.shape[0] for t in group)
        line = np.full((height, (width + 8) * columns, 3), 255, np.uint8)
        for k, tile in enumerate(group):
            line[:tile.shape[0], k * (width + 8):k * (width + 8) + tile.shape[1]] = tile
        rows.append(line)
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
