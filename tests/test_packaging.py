"""The installable package: `pip install .` gives the library and a `spatule-synth` command that
does what `python generate.py` does, with its data files (demo photos, pipeline templates, the
default label map) inside the package."""

import filecmp
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from spatule_synth.core.config import CHECKOUT_LABEL_MAP, PACKAGED_LABEL_MAP
from test_scale import tree

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_packaged_label_map_is_the_checkouts():
    assert filecmp.cmp(PACKAGED_LABEL_MAP, CHECKOUT_LABEL_MAP, shallow=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel of the checkout installed, without its dependencies, in a new virtual environment
    that borrows this one's packages (TensorFlow & co. are not downloaded again): its bin folder."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"  # a copy of what the wheel is built from: the build writes beside it
    shutil.copytree(os.path.join(REPO, "spatule_synth"), source / "spatule_synth",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(root / "wheel"), str(source)], check=True, capture_output=True, cwd=root)
    [wheel] = glob.glob(str(root / "wheel" / "*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, capture_output=True)
    [site] = glob.glob(str(root / "venv" / "lib" / "python*" / "site-packages"))
    with open(os.path.join(site, "borrowed.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(root / "venv" / "bin" / "pip"), "install", "--quiet", "--no-deps", "--no-index", wheel],
                   check=True, capture_output=True)
    return root / "venv" / "bin"


def demo_flagfile(path, demo_data, output_dir):
    """configs/demo.flags with its demo data at ``demo_data`` and its output at ``output_dir``."""
    with open(os.path.join(REPO, "configs", "demo.flags"), encoding="utf-8") as handle:
        text = handle.read().replace("spatule_synth/demo_data", str(demo_data))
    path.write_text(text.replace("object_detection_workspace/runs/demo", str(output_dir)))
    return f"--flagfile={path}"


@pytest.mark.slow
def test_the_installed_command_makes_the_demo_run_of_generate_py_from_its_own_files(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"  # no checkout here: the package's own demo photos and label map
    elsewhere.mkdir()
    demo_data = subprocess.run([str(installed / "python"), "-c", "import os, spatule_synth.demo_data as d; "
                                "print(os.path.dirname(d.__file__))"], cwd=elsewhere, capture_output=True,
                               text=True, check=True).stdout.strip()
    assert demo_data.startswith(str(installed.parent)), demo_data  # the installed copy, not the checkout
    extra = ["--num_images=24", "--noreport"]
    checkout = subprocess.run([sys.executable, "generate.py", demo_flagfile(
        tmp_path / "checkout.flags", os.path.join(REPO, "spatule_synth", "demo_data"), tmp_path / "run"), *extra],
        cwd=REPO, capture_output=True, text=True)
    assert checkout.returncode == 0, checkout.stderr
    os.rename(tmp_path / "run", tmp_path / "checkout")
    command = subprocess.run([str(installed / "spatule-synth"), demo_flagfile(
        tmp_path / "installed.flags", demo_data, tmp_path / "run"), *extra], cwd=elsewhere, capture_output=True,
        text=True)
    assert command.returncode == 0, command.stderr
    assert command.stdout.replace(demo_data, "DEMO") == checkout.stdout.replace(
        os.path.join(REPO, "spatule_synth", "demo_data"), "DEMO")  # the same summary
    written, expected = tree(tmp_path / "run"), tree(tmp_path / "checkout")
    assert {k: v for k, v in written.items() if k != "manifest.json"} == \
        {k: v for k, v in expected.items() if k != "manifest.json"}
    assert len(written) > 50


@pytest.mark.slow
def test_the_installed_command_has_the_help_and_usage_errors_of_generate_py(installed, tmp_path):
    shown = subprocess.run([str(installed / "spatule-synth"), "--help"], capture_output=True, text=True, cwd=tmp_path)
    checkout = subprocess.run([sys.executable, "generate.py", "--help"], capture_output=True, text=True, cwd=REPO)
    flag_lines = [line for line in checkout.stdout.splitlines() if line.startswith("  --")]
    assert len(flag_lines) > 80 and any(line.startswith("  --layout: <random|grid>:") for line in flag_lines)
    assert shown.returncode == checkout.returncode and \
        [line for line in shown.stdout.splitlines() if line.startswith("  --")] == flag_lines
    refused = subprocess.run([str(installed / "spatule-synth"), "--mode=convert", "--num_images=3"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: --num_images is not used by --mode=convert")
