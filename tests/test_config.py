"""The generate settings: one frozen section per stage, built from flat names, written flat."""

import dataclasses
import json

import pytest

from spatule_synth.core.augment import parse_ranges
from spatule_synth.core.config import (MANIFEST_SETTINGS, SECTIONS, ExecutionConfig, GenerateConfig, InputsConfig,
                                       OutputConfig, PlacementConfig, SplitConfig)

BASE = dict(input_dirs=("photos",), output_dir="out")


def test_each_setting_goes_to_its_stage_section():
    config = GenerateConfig.from_settings(**BASE, canvas_size=96, eval_fraction=0.5, mask="grabcut",
                                          jpeg_quality=80, num_workers=3, seed=7)
    assert config.placement == PlacementConfig(canvas_size=96)
    assert config.split == SplitConfig(eval_fraction=0.5)
    assert config.inputs == InputsConfig(input_dirs=("photos",), mask="grabcut")
    assert config.output == OutputConfig(output_dir="out", jpeg_quality=80)
    assert config.execution == ExecutionConfig(num_workers=3) and config.seed == 7
    assert config.execution.worker_count == 3


def test_an_unknown_setting_is_refused_by_name():
    with pytest.raises(TypeError, match="unknown generate setting 'canvas'"):
        GenerateConfig.from_settings(**BASE, canvas=96)


def test_sections_are_frozen_and_settings_read_back_flat():
    config = GenerateConfig.from_settings(**BASE, canvas_size=32, num_workers=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.placement.canvas_size = 64
    assert GenerateConfig.from_settings(**config.settings()) == config


def test_the_manifest_gets_every_setting_but_the_execution_ones_flat_and_in_order():
    config = GenerateConfig.from_settings(**BASE, object_augment=parse_ranges("rotate=10", "object"),
                                          num_workers=2, cache_mb=64, runner="beam", resume=True)
    written = config.as_json()
    execution = {f.name for f in dataclasses.fields(ExecutionConfig)}
    every = {f.name for kind in SECTIONS.values() for f in dataclasses.fields(kind)} | {"seed"}
    assert list(written) == list(MANIFEST_SETTINGS) and set(written) == every - execution
    assert written["object_augment"]["rotate"] == (-10.0, 10.0)  # nested ranges as plain dicts
    json.dumps(written)  # plain data
    same_but_run_differently = GenerateConfig.from_settings(**BASE, object_augment=parse_ranges("rotate=10", "object"))
    assert same_but_run_differently.as_json() == written


@pytest.mark.parametrize("section, settings, message", [
    (PlacementConfig, dict(objects_per_image=(3, 1)), "objects_per_image must be min,max"),
    (PlacementConfig, dict(blend=("smudge",)), "blend modes must be among"),
    (SplitConfig, dict(identity="regex"), "identity=regex needs an identity_regex"),
    (SplitConfig, dict(identity="regex", identity_regex="("), "is not a regular expression"),
    (InputsConfig, dict(), "no labelled input"),
    (InputsConfig, dict(input_dirs=("p",), mask="model"), "mask=model needs mask_model"),
    (OutputConfig, dict(), "output_dir is required"),
    (OutputConfig, dict(output_dir="o", jpeg_quality=0), "jpeg_quality must lie in"),
    (ExecutionConfig, dict(beam_pipeline_options="--runner=DirectRunner"), "goes with runner=beam"),
])
def test_each_section_checks_its_own_settings(section, settings, message):
    with pytest.raises(ValueError, match=message):
        section(**settings)


def test_coco_images_default_to_the_json_folder():
    inputs = InputsConfig(coco_json=("/data/coco/train.json",))
    assert inputs.coco_image_dirs == ("/data/coco",)
