"""The segmenter on data that ships: training time per epoch, and mask IoU of the trained model
next to GrabCut and the whole box on the same held-out boxes.

    .venv/bin/python bench/bench_segmenter.py [--rendered_tags 150] [--blobs 40] [--epochs 30]
        [--size 128] [--output /tmp/bench_segmenter] [--sheet docs/segmenter_sheet.png] [--sheet_rows 3]

Data (nothing to download): ``--rendered_tags`` leg-ring tags rendered from the seed (class
``tag``; exact masks) and ``--blobs`` alpha cutouts of a second class, ``blob``, that the model
never trains on (``--seg_unseen_classes=blob``): random polygons and ellipses filled with the
texture of a window of a demo photo (birds, water, mud). Both are pasted by the segmenter on
windows of the demo data's object-free photos. The demo's photographed tags have box-only labels,
so they are counted out, as the command would. Trains in-process, then loads the exported
SavedModel with ``load_mask_model`` and scores it as ``python -m spatule_synth.segmenter train``
does. Prints seconds per epoch (the first, which traces the graph, apart), crops per second and
the IoU table; ``--sheet`` also copies the evaluation sheet there.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spatule_synth.core.config import InputsConfig  # noqa: E402
from spatule_synth.core.images import read_image  # noqa: E402
from spatule_synth.core.problems import ProblemLog  # noqa: E402
from spatule_synth.formats.label_map import LabelMap, write_label_map  # noqa: E402
from spatule_synth.segmenter.masked_objects import Tally, describe_left_out, masked_objects  # noqa: E402
from spatule_synth.segmenter.pairs import build_pairs, split_pairs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "spatule_synth", "demo_data")


def write_blobs(folder: str, count: int, seed: int = 11) -> None:
    """``count`` RGBA cutouts FOLDER/blob/NN.png: a random polygon or ellipse (40-110 px) filled
    with a window of a demo photo."""
    rng = np.random.default_rng(seed)
    photos = [read_image(os.path.join(DEMO, "labelled", name)).pixels
              for name in sorted(os.listdir(os.path.join(DEMO, "labelled"))) if name.lower().endswith(".jpg")]
    os.makedirs(os.path.join(folder, "blob"), exist_ok=True)
    for index in range(count):
        width, height = (int(v) for v in rng.integers(40, 110, 2))
        alpha = np.zeros((height * 4, width * 4), np.uint8)
        if index % 2:
            cv2.ellipse(alpha, (width * 2, height * 2), (width * 2 - 2, height * 2 - 2), 0, 0, 360, 255, -1)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
            radii = rng.uniform(0.55, 1.0, 7)
            points = np.stack([width * 2 + radii * (width * 2 - 2) * np.cos(angles),
                               height * 2 + radii * (height * 2 - 2) * np.sin(angles)], axis=1)
            cv2.fillPoly(alpha, [points.round().astype(np.int32)], 255)
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)
        photo = photos[int(rng.integers(len(photos)))]
        top, left = int(rng.integers(photo.shape[0] - height)), int(rng.integers(photo.shape[1] - width))
        rgba = np.dstack([photo[top:top + height, left:left + width], alpha])
        Image.fromarray(rgba).save(os.path.join(folder, "blob", f"{index:02d}.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rendered_tags", type=int, default=150)
    parser.add_argument("--blobs", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="/tmp/bench_segmenter")
    parser.add_argument("--sheet", default="")
    parser.add_argument("--sheet_rows", type=int, default=3, help="objects shown per section")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench_segmenter_")
    try:
        write_blobs(os.path.join(work, "cutouts"), args.blobs)
        label_map = LabelMap.from_names(["tag", "blob"])
        write_label_map(label_map, os.path.join(work, "map.pbtxt"))
        inputs = InputsConfig(input_dirs=(os.path.join(DEMO, "labelled"),),
                              background_dirs=(os.path.join(DEMO, "backgrounds"),),
                              cutout_dirs=(os.path.join(work, "cutouts"),), rendered_tags=args.rendered_tags,
                              label_map_path=os.path.join(work, "map.pbtxt"))
        start = time.perf_counter()
        problems, tally = ProblemLog(), Tally()
        pairs, left_out = build_pairs(masked_objects(inputs, label_map, problems, tally, args.seed),
                                      tally, problems, args.seed)
        split = split_pairs(pairs, 0.2, ("blob",), args.seed)
        read_seconds = time.perf_counter() - start
        run(args, split, pairs, left_out, read_seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, split, pairs, left_out, read_seconds: float) -> None:
    from spatule_synth.core.masks import load_mask_model
    from spatule_synth.segmenter.evaluation import evaluate_split, table
    from spatule_synth.segmenter.model import build_unet
    from spatule_synth.segmenter.train import SegmenterSettings, train_segmenter
    settings = SegmenterSettings(args.output, args.size, args.epochs, args.batch_size, args.seed, 0.2, ("blob",),
                                 overwrite=True)
    start = time.perf_counter()
    history = train_segmenter(split, settings, say=lambda _: None)
    total = time.perf_counter() - start
    start = time.perf_counter()
    model = load_mask_model(os.path.join(args.output, "saved_model"))
    sections, _, sheet = evaluate_split(split.held_out, split.unseen, model, sheet_rows=args.sheet_rows)
    evaluate_seconds = time.perf_counter() - start
    later = [entry["seconds"] for entry in history[1:]] or [history[0]["seconds"]]
    per_epoch = float(np.median(later))
    print(f"pairs: {len(pairs)} ({sum(p.class_name == 'tag' for p in pairs)} rendered tags, "
          f"{sum(p.class_name == 'blob' for p in pairs)} blobs; left out: {describe_left_out(left_out)}), "
          f"read and pasted in {read_seconds:.1f} s")
    print(f"train {len(split.train)} / held-out {len(split.held_out)} / unseen class {len(split.unseen)}; "
          f"U-Net width {settings.width}: {build_unet(args.size, settings.width).count_params():,} weights")
    print(f"{args.epochs} epochs at {args.size}x{args.size} in {total:.1f} s (with checkpoints, held-out "
          f"scoring and export); training steps per epoch: first {history[0]['seconds']:.2f} s, then median "
          f"{per_epoch:.2f} s ({len(split.train) / per_epoch:.0f} crops/s)")
    print(f"held-out IoU at {args.size} px by epoch: " + ", ".join(
        f"{entry['epoch']}: {entry['held_out_iou']:.3f}" for entry in history
        if entry["epoch"] in (1, 2, 5, 10, 20, 30, 50, 100) or entry["epoch"] == args.epochs))
    print(f"evaluation (model, GrabCut, box on {len(split.held_out) + len(split.unseen)} objects): "
          f"{evaluate_seconds:.1f} s")
    print(table(sections))
    if args.sheet and sheet is not None:
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        if ok:
            with open(args.sheet, "wb") as handle:
                handle.write(encoded.tobytes())
            print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
