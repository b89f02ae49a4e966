"""Frozen run configurations: what the library receives once the command line has been validated.

Only `spatule_synth.cli` builds these from flags; the library never reads flags. The resolved
configuration is written into every output manifest (`as_json`).
"""

from __future__ import annotations

import dataclasses
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LABEL_MAP = os.path.join(REPO_ROOT, "annotations", "label_map.pbtxt")


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """labelImg folders -> TFRecord shards + label map (real photos, usually for evaluation)."""

    input_dirs: tuple[str, ...]
    output_dir: str
    annotation_dirs: tuple[str, ...] = ()
    label_map_path: str = DEFAULT_LABEL_MAP
    record_name: str = "real"
    num_shards: int = 1
    keep_negatives: bool = True
    overwrite: bool = False
    on_error: str = "skip"

    def as_json(self) -> dict:
        return dataclasses.asdict(self)
