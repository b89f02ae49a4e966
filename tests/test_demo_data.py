"""The embedded demo data is what its builder draws: rebuilt into a temporary folder, every file is
byte-identical to the one in spatule_synth/demo_data/ (with the pinned numpy, OpenCV and Pillow)."""

import filecmp
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "spatule_synth", "demo_data")


def files_under(root):
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names
                  if not name.endswith((".md", ".py")) and "__pycache__" not in folder)


@pytest.mark.slow
def test_the_builder_redraws_the_embedded_demo_data_byte_for_byte(tmp_path):
    subprocess.run([sys.executable, "tools/build_demo_data.py", "--output", str(tmp_path)], cwd=REPO,
                   check=True, capture_output=True)
    assert files_under(tmp_path) == files_under(DEMO)
    _, mismatch, errors = filecmp.cmpfiles(DEMO, tmp_path, files_under(DEMO), shallow=False)
    assert mismatch == [] and errors == []
