"""--mode=report --compare_to: the synthetic run's objects beside the real photos' ones."""

import json
import os
import subprocess
import sys

import pytest

from spatule_synth.core.config import ConvertConfig, GenerateConfig
from spatule_synth.generate.run import run_generate
from spatule_synth.modes.convert import run_convert
from spatule_synth.modes.domain import DomainError, MEASURES, compare, measure_run
from conftest import background_photos, tag_photos

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A generate run whose tags are 24/128 of the image (size share 0.19) and a convert run of
    the photos they come from, where they are 24/173 (0.14)."""
    root = tmp_path_factory.mktemp("domain")
    tag_photos(root / "labelled", 6)
    background_photos(root / "backgrounds", 4, size=(260, 200))
    run_generate(GenerateConfig.from_settings(
        input_dirs=(str(root / "labelled"),), background_dirs=(str(root / "backgrounds"),),
        output_dir=str(root / "synthetic"), num_images=40, canvas_size=128, eval_fraction=0.3,
        num_workers=1, seed=2, report=False, blend=("paste",)))
    run_convert(ConvertConfig(input_dirs=(str(root / "labelled"),), output_dir=str(root / "real")))
    return root


def test_each_object_is_measured_relative_to_its_image(runs):
    real = measure_run(str(runs / "real"))
    assert len(real["size share"]) == 12  # 6 photos x 2 tags
    assert real["width share"] == pytest.approx(30 / 200, abs=1e-3)
    assert real["height share"] == pytest.approx(20 / 150, abs=1e-3)
    assert real["aspect"] == pytest.approx(1.5, abs=0.01)
    synthetic = measure_run(str(runs / "synthetic"))
    assert synthetic["width share"].min() >= 29.9 / 128 - 1e-3  # whole tags (paste, no truncation)


def test_the_report_warns_with_the_flag_to_change_and_writes_its_files(runs):
    done = subprocess.run([sys.executable, "generate.py", "--mode=report", f"--output_dir={runs / 'synthetic'}",
                           f"--compare_to={runs / 'real'}"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"domain match with {runs / 'real'}: " in done.stdout
    size = [line for line in lines if line.startswith("  warning: real objects fill")]
    assert size == ["  warning: real objects fill 14%-14% of the image's size (square root of the area); "
                    "synthetic 19%-19%: lower --scale_range (about x0.74: --scale_range=0.74,0.74)"]  # (0.141 / 0.191)
    content = json.loads((runs / "synthetic" / "report" / "domain.json").read_text())
    assert [m["measure"] for m in content["measures"]] == list(MEASURES)
    assert content["objects"]["real"] == 12
    assert (runs / "synthetic" / "report" / "domain.png").stat().st_size > 10_000
    assert "domain match (--compare_to)" in (runs / "synthetic" / "report" / "index.html").read_text()


def test_a_run_covers_itself():
    import numpy as np
    rng = np.random.default_rng(0)
    values = {name: rng.uniform(0.1, 0.9, 500) for name in MEASURES}
    comparisons = compare(values, {name: v[::2] for name, v in values.items()}, (1.0, 1.0))
    assert all(c.coverage >= 0.9 and c.overlap > 0.8 and not c.warning for c in comparisons)


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    with pytest.raises(DomainError, match=f"^{tmp_path}: cannot read manifest.json"):
        measure_run(str(tmp_path))
