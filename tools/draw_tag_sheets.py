"""Draw the README's pictures of rendered tags (docs/rendered_tags.png, docs/rendered_vs_real.png).

    .venv/bin/python tools/draw_tag_sheets.py [--output docs]

1. 36 rendered tags as `generate --rendered_tags` makes them with the default settings on the demo
   data (ring sizes following the demo's real tags), pixels above, masks below.
2. A demo run with 60 rendered tags (``--rendered_fraction=0.5``, 120 images): the report's
   photographed and rendered instances, as pasted, one above the other.
"""

import argparse
import os
import sys
import tempfile

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spatule_synth.core.config import GenerateConfig, InputsConfig, PlacementConfig, SplitConfig  # noqa: E402
from spatule_synth.core.problems import ProblemLog  # noqa: E402
from spatule_synth.formats.label_map import read_label_map  # noqa: E402
from spatule_synth.generate.rendered_source import contact_sheet  # noqa: E402
from spatule_synth.generate.run import run_generate  # noqa: E402
from spatule_synth.generate.sources import read_sources  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "spatule_synth", "demo_data")


def save(path: str, rgb: np.ndarray) -> None:
    cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=os.path.join(REPO, "docs"))
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    inputs = InputsConfig(input_dirs=(os.path.join(DEMO, "labelled"),),
                          background_dirs=(os.path.join(DEMO, "backgrounds"),), rendered_tags=36)
    sources = read_sources(inputs, SplitConfig(), PlacementConfig(), read_label_map(inputs.label_map_path),
                           ProblemLog(), 1, 13)
    rendered = [c for c in sources.cutouts if c.origin == "rendered"]
    save(os.path.join(args.output, "rendered_tags.png"), contact_sheet(rendered, columns=18))
    with tempfile.TemporaryDirectory() as tmp:
        run_generate(GenerateConfig.from_settings(
            input_dirs=inputs.input_dirs, background_dirs=inputs.background_dirs, output_dir=tmp + "/run",
            num_images=120, seed=13, rendered_tags=60, rendered_fraction=0.5, num_workers=1,
            blend=("seamless_normal", "seamless_mixed", "feather"), negative_fraction=0.1))
        sheets = [cv2.cvtColor(cv2.imread(os.path.join(tmp, "run", "report", f"instances_{origin}.png")),
                               cv2.COLOR_BGR2RGB)[:2 * 96] for origin in ("photographed", "rendered")]
    gap = np.full((8, sheets[0].shape[1], 3), 255, np.uint8)
    save(os.path.join(args.output, "rendered_vs_real.png"), np.vstack([sheets[0], gap, sheets[1]]))


if __name__ == "__main__":
    main()
