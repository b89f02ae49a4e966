"""Throughput of ``convert`` on camera-sized photos, measured in one run (the machine is shared).

    .venv/bin/python bench/bench_convert.py [--photos 24]

Makes N synthetic 3264x2448 JPEG photos (smooth scene + noise, ~2-3 MB like a field camera's) with
labelImg XML, then converts them twice: as stored upright (the JPEG bytes go into the record
untouched) and with EXIF orientation 6 (decode, rotate and re-encode every photo). Prints images
per second for both, their ratio, and the peak RSS of the process.
"""

import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from camera_photos import HEIGHT, WIDTH, camera_photo  # noqa: E402

from spatule_synth.core.config import ConvertConfig  # noqa: E402
from spatule_synth.modes.convert import run_convert  # noqa: E402
from spatule_synth.formats.voc import VocAnnotation, VocObject, write_voc  # noqa: E402
from spatule_synth.core.boxes import Box  # noqa: E402


def make_folder(folder: str, photos: int, orientation: int, rng: np.random.Generator) -> None:
    os.makedirs(folder)
    for index in range(photos):
        name = f"IMAG{index:04d}.JPG"
        pixels = camera_photo(rng)
        exif = Image.Exif()
        if orientation != 1:
            exif[0x0112] = orientation
            pixels_to_store = np.ascontiguousarray(np.rot90(pixels, 1))
        else:
            pixels_to_store = pixels
        Image.fromarray(pixels_to_store).save(os.path.join(folder, name), quality=92, exif=exif.tobytes())
        tag = VocObject("tag", Box(1000 + index, 800, 1100 + index, 850))
        write_voc(VocAnnotation(name, WIDTH, HEIGHT, objects=(tag,)),
                  os.path.join(folder, f"IMAG{index:04d}.xml"))


def timed_convert(folder: str, output: str) -> float:
    start = time.perf_counter()
    result = run_convert(ConvertConfig(input_dirs=(folder,), output_dir=output))
    elapsed = time.perf_counter() - start
    assert len(result.examples) == len(os.listdir(folder)) // 2
    return len(result.examples) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=24)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        upright, rotated = os.path.join(tmp, "upright"), os.path.join(tmp, "rotated")
        make_folder(upright, args.photos, 1, rng)
        make_folder(rotated, args.photos, 6, rng)
        size_mb = sum(os.path.getsize(os.path.join(upright, f)) for f in os.listdir(upright)) / 1e6
        timed_convert(upright, os.path.join(tmp, "warm-up"))  # imports, caches
        rate_upright = timed_convert(upright, os.path.join(tmp, "out-upright"))
        rate_rotated = timed_convert(rotated, os.path.join(tmp, "out-rotated"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"photos: {args.photos} x {WIDTH}x{HEIGHT} JPEG ({size_mb / args.photos:.1f} MB each)")
    print(f"convert, upright JPEG (bytes kept):    {rate_upright:6.2f} img/s")
    print(f"convert, EXIF-rotated (re-encoded):    {rate_rotated:6.2f} img/s")
    print(f"ratio upright/rotated:                 {rate_upright / rate_rotated:6.2f}")
    print(f"peak RSS:                              {peak_mb:6.0f} MB")


if __name__ == "__main__":
    main()
