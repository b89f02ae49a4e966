"""GAN training time per epoch on this machine, and a sample sheet to look at.

    .venv/bin/python bench/bench_gan.py [--input_dirs DIR] [--annotation_dirs DIR]
        [--label_map FILE] [--epochs 60] [--size 32] [--eval_every 5] [--output /tmp/bench_gan]

Trains ``python -m spatule_synth.gan train`` in-process on the labelled objects of the inputs
(default: the demo data's 10 tags) and prints the seconds per epoch (the first epoch, which traces
the graph, apart), with and without the two-sample test, the crops per second, and the last
epoch's evaluation. The sample sheets are in OUTPUT/samples/.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spatule_synth.core.config import InputsConfig, PlacementConfig, SplitConfig  # noqa: E402
from spatule_synth.core.problems import ProblemLog  # noqa: E402
from spatule_synth.formats.label_map import read_label_map  # noqa: E402
from spatule_synth.gan.crops import crop_set  # noqa: E402
from spatule_synth.generate.sources import read_sources  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input_dirs", default=os.path.join(REPO, "spatule_synth/demo_data/labelled"))
    parser.add_argument("--annotation_dirs", default="")
    parser.add_argument("--label_map", default=os.path.join(REPO, "annotations/label_map.pbtxt"))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--output", default="/tmp/bench_gan")
    parser.add_argument("--eval_every", type=int, default=5)
    args = parser.parse_args()
    inputs = InputsConfig(input_dirs=(args.input_dirs,), label_map_path=args.label_map,
                          annotation_dirs=(args.annotation_dirs,) if args.annotation_dirs else (),
                          use_truncated_cutouts=True)
    label_map = read_label_map(inputs.label_map_path)
    sources = read_sources(inputs, SplitConfig(), PlacementConfig(canvas_size=4096), label_map, ProblemLog(),
                           1, 0, backgrounds_required=False)
    data = crop_set(list(sources.cutouts), list(label_map.names), args.size)
    from spatule_synth.gan import train as train_module
    times = []
    original = train_module._evaluate

    def timed_evaluate(*a, **k):
        result = original(*a, **k)
        times.append((time.perf_counter(), "two_sample_accuracy" in result))
        return result

    train_module._evaluate = timed_evaluate
    start = time.perf_counter()
    info = train_module.train_gan(data, train_module.GanSettings(args.output, args.size, args.epochs, seed=0,
                                                                 eval_every=args.eval_every, overwrite=True), say=lambda _: None)
    total = time.perf_counter() - start
    epochs = [b - a for (a, _), (b, _) in zip(times, times[1:])]
    flags = [tested for _, tested in times[1:]]
    plain = [t for t, tested in zip(epochs, flags) if not tested]
    tested = [t for t, tested in zip(epochs, flags) if tested]
    print(f"{len(data.crops)} crops of {', '.join(data.classes)} at {args.size}x{args.size}, "
          f"{args.epochs} epochs in {total:.1f} s")
    if plain:
        print(f"seconds per epoch (after the first): {sum(plain) / len(plain):.2f} "
              f"({len(data.crops) / (sum(plain) / len(plain)):.0f} crops/s, evaluation by nearest crop included)")
    if tested:
        print(f"epochs with the two-sample test: {sum(tested) / len(tested):.2f} s")
    last = info["evaluation"][-1]
    print("last epoch:", json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in last.items()}))
    print(f"samples: {os.path.join(args.output, 'samples')}/")


if __name__ == "__main__":
    main()
