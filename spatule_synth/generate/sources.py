"""The read stage of generation: every input format -> validated cutouts, backgrounds, distractors.

* **Cutouts** (`spatule_synth.generate.cutouts`): every kept object of every labelled photo, grouped with
  the objects it overlaps, with its mask. Sources: labelImg folders (``input_dirs``), COCO JSON,
  YOLO folders, VOC ``SegmentationObject`` roots and alpha-PNG cutout folders. Box-only objects
  get masks by ``--mask`` (``box``, ``grabcut`` or ``model``), once per object: GrabCut and model
  masks come from the mask cache or are made on a process pool, one photo per task, while the
  next photos are read (`spatule_synth.generate.mask_jobs`).
  Each cutout knows its identity (`spatule_synth.generate.identities`). Objects cut by their photo's edge (marked
  truncated, or a box touching the border) and objects marked difficult are not pasted unless
  ``use_truncated_cutouts``/``use_difficult_cutouts`` say so (nor is anything overlapping them:
  they would be cut out together); alpha cutouts are whole by definition.
* **Backgrounds**: photos known to show no labelled object (an annotation without objects; with
  ``--unlabelled=negative`` a photo without annotation file) from the labelled inputs, plus every
  image of ``background_dirs`` that has no annotation file with objects beside it. A photo that lost
  a label is *not* a background: its pixels still show the object. A photo given twice (the same
  file, or the same bytes under another name) is one background.
* **Distractors**: alpha-PNG cutouts from ``distractor_dirs``, pasted but never labelled.

Every format goes through the same validation (`spatule_synth.core.validation.load_photo`, shared with
convert): class in the label map, boxes in the frame the annotator saw, inside the decoded photo,
masks not empty, duplicates once; a photo that lost a label is skipped whole. Pixels of
backgrounds are not kept here (workers decode them again, with a bounded cache); only their file
and size.

Photos are read in input order, one at a time; with ``--mask=grabcut``/``model`` and several
workers, a few photos are validated ahead (`MaskJobs.may_read_ahead`) so that the pool refines
their masks meanwhile. The problems found while reading ahead are held back and reported when their photo's
turn comes, so the problems (and the manifest) are in the same order whatever ``num_workers``.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterator

import numpy as np

from spatule_synth.core.annotations import AnnotatedImage
from spatule_synth.core.config import InputsConfig, PlacementConfig, SplitConfig
from spatule_synth.generate.cutouts import Cutout, PhotoObject, cut_group, distractor_cutout, group_box, \
    overlapping_groups
from spatule_synth.generate.identities import content_key, first_identity, join_identities, object_key
from spatule_synth.core.images import ImageReadError, check_image, read_image, unsupported_format
from spatule_synth.formats.label_map import LabelMap
from spatule_synth.generate.mask_jobs import MaskJobs, PhotoMasks
from spatule_synth.generate.rendered_source import rendered_cutouts
from spatule_synth.formats.labelimg import InputDirError, find_pairs, images_by_key, is_voc_xml, is_yolo_txt, \
    label_key, list_dir, read_labelimg, stem_key
from spatule_synth.core import storage
from spatule_synth.core.problems import Problem, ProblemLog
from spatule_synth.core.transform import CUTOUT_MARGIN, placement_geometry
from spatule_synth.core.validation import InputRules, ValidObject, ValidPhoto, load_photo
from spatule_synth.formats.voc import VocFormatError, read_voc

__all__ = ["CUTOUT_MARGIN", "Background", "Cutout", "SourceError", "SourceSet", "read_sources"]


# A box this close to the photo's border touches it: labelImg writes a box drawn to the left or top
# edge as starting at 1 (never 0), and some tools end boxes at width - 1.
EDGE_PX = 1


class SourceError(ValueError):
    """The inputs cannot make a data set at all (no cutout, no background); says what to add."""


@dataclasses.dataclass(frozen=True)
class Background:
    """An object-free photo; windows of it become canvases."""

    path: str
    width: int  # displayed size (EXIF orientation applied)
    height: int
    local: str = ""  # for a URL: a local copy the parent made (`spatule_synth.core.storage.local_copy`)


@dataclasses.dataclass(frozen=True, eq=False)
class SourceSet:
    cutouts: tuple[Cutout, ...]
    backgrounds: tuple[Background, ...]
    distractors: tuple[Cutout, ...] = ()


class _MaskMaker:
    """Masks for box-only objects of one photo by ``--mask``: the whole box, or a mask from
    `MaskJobs` (cache, pool or made now); a fallback to the whole box is reported."""

    def __init__(self, method: str, problems: ProblemLog, jobs: MaskJobs, requested: PhotoMasks) -> None:
        self.method, self.problems, self.jobs, self.requested = method, problems, jobs, requested

    def __call__(self, photo: ValidPhoto, obj: ValidObject) -> np.ndarray:
        """The mask of ``obj`` over ``obj.box.voc_ints()``: its own, or one made by ``--mask``."""
        if obj.mask is not None:
            return obj.mask
        x0, y0, x1, y1 = obj.box.voc_ints()
        if self.method == "box":
            return np.full((y1 - y0, x1 - x0), 255, np.uint8)
        mask, fell_back = self.jobs.mask(self.requested, photo, (x0, y0, x1, y1))
        if fell_back:
            self.problems.report(photo.problem("mask_fallback", f"--mask={self.method} {fell_back}; "
                                               "the whole box is used", obj))
        return mask


def read_sources(inputs: InputsConfig, split: SplitConfig, placement: PlacementConfig,
                 label_map: LabelMap, problems: ProblemLog, workers: int = 1, seed: int = 0,
                 backgrounds_required: bool = True) -> SourceSet:
    """Read and validate every input once; `SourceError` if no cutout or no background is left.

    ``split`` says how cutouts are named (``identity``, ``identity_regex``); ``placement`` gives the
    canvas and the smallest scale every cutout and background must fit; ``workers`` make the
    ``--mask=grabcut|model`` masks; ``seed`` draws the rendered tags
    (`spatule_synth.generate.rendered_source`), added after the real cutouts. Without
    ``backgrounds_required`` (GAN training: cutouts only) no background is no error."""
    inputs.input_rules.check(label_map)
    cutouts: list[Cutout] = []
    candidates: list[Background] = []  # photos known to be object-free, from every input
    labelled: dict[str, str] = {}  # real path and content of a photo with labels -> its label file
    with MaskJobs(inputs, workers) as jobs:
        for annotated, photo, requested in _validated_photos(inputs, split, label_map, problems, jobs):
            if _may_show_labels(annotated, label_map, inputs.input_rules):
                for key in _photo_keys(annotated.image_path):
                    labelled.setdefault(key, annotated.annotation_path)
            if photo is None:
                continue
            if photo.objects:
                cutouts.extend(cut_out(photo, inputs, split, placement, problems,
                                       _MaskMaker(inputs.mask, problems, jobs, requested),
                                       edge_cuts_objects=not annotated.is_cutout_file))
            else:
                candidates.append(Background(photo.image_path, photo.image.width, photo.image.height))
    candidates.extend(background_folder_photos(inputs, problems))
    backgrounds = _backgrounds(candidates, labelled, placement.canvas_size, problems)
    # photos behind URLs: copied here once, so that image workers on this machine decode local files
    backgrounds = [dataclasses.replace(b, local=storage.local_copy(b.path, storage.input_cache_dir()))
                   if storage.is_url(b.path) and not b.local else b for b in backgrounds]
    if not cutouts and not (inputs.rendered_tags or inputs.gan_model):
        raise SourceError("no usable labelled object in the inputs: label some objects (classes of "
                          "the label map) or check the messages above")
    if not backgrounds and backgrounds_required:
        raise SourceError("no background photo: add photos without objects to the inputs "
                          "(an annotation with no object; or photos without annotation file with "
                          "--unlabelled=negative) or give --background_dirs")
    cutouts = _joined_identities(cutouts, split.identity == "auto")
    if split.identity == "regex":  # the name the regex gives is the code of the tag it shows
        cutouts = [dataclasses.replace(c, code=c.identity, code_class=inputs.tag_class)
                   if inputs.tag_class in c.class_names else c for c in cutouts]
    try:
        cutouts += rendered_cutouts(inputs, label_map, seed, cutouts)
        if inputs.gan_model:
            from spatule_synth.generate.gan_source import gan_cutouts  # TensorFlow: only when asked
            cutouts += gan_cutouts(inputs.gan_model, inputs.gan_instances, label_map, seed, problems)
    except ValueError as error:  # RenderedTagsError, GanModelError
        raise SourceError(str(error)) from None
    distractors = _distractors(inputs.distractor_dirs, label_map, {storage.canonical(c.source_file) for c in cutouts},
                               problems)
    return SourceSet(tuple(cutouts), tuple(backgrounds), tuple(distractors))


class _HeldProblems(ProblemLog):
    """A problem log that only keeps problems, to be reported later (`_validated_photos`)."""

    def report(self, problem: Problem) -> None:
        self.problems.append(problem)

    def take(self) -> list[Problem]:
        taken, self.problems = self.problems, []
        return taken


def _validated_photos(inputs: InputsConfig, split: SplitConfig, label_map: LabelMap,
                      problems: ProblemLog, jobs: MaskJobs) -> Iterator[tuple[AnnotatedImage, ValidPhoto | None, PhotoMasks]]:
    """Every labelled input in input order with its photo validated by `load_photo` (None:
    skipped) and the masks `jobs` is making for it. Reads inputs ahead while
    `MaskJobs.may_read_ahead` allows (never with one worker); the problems of reading and validating an input (and an error raised
    doing so) are held back and reported (raised) just before it is yielded, so ``problems`` gets
    them in the order of reading the inputs one at a time, between the problems the caller
    reports while cutting the inputs before it."""
    held = _HeldProblems()
    reading = annotated_images(inputs, held)
    ahead: collections.deque = collections.deque()  # (held problems, item or None, error or None)
    held_bytes, finished = 0, False
    while True:
        while not finished and jobs.may_read_ahead(len(ahead), held_bytes):
            try:
                annotated = next(reading)
                photo = load_photo(annotated, label_map, inputs.input_rules, held)
                boxes = (_mask_boxes(photo, inputs, split, not annotated.is_cutout_file)
                         if photo else [])
                ahead.append((held.take(), (annotated, photo, jobs.request(photo, boxes)), None))
                held_bytes += _held_bytes(photo)
            except StopIteration:
                finished = True
                ahead.append((held.take(), None, None))
            except Exception as error:  # pylint: disable=broad-except  (raised in its turn)
                finished = True
                ahead.append((held.take(), None, error))
        held_problems, item, error = ahead.popleft()
        held_bytes -= _held_bytes(item[1]) if item else 0
        for problem in held_problems:
            problems.report(problem)
        if error is not None:
            raise error
        if item is None:
            return
        yield item


def _held_bytes(photo: ValidPhoto | None) -> int:
    return 0 if photo is None else photo.image.pixels.nbytes + len(photo.file_bytes)


def _may_show_labels(annotated: AnnotatedImage, label_map: LabelMap, rules: InputRules) -> bool:
    """True unless the annotation says the photo shows no labelled object: it is unusable, lost an
    object, or has an object of a class that is not ignored."""
    return not annotated.usable or bool(annotated.lost) or any(
        label_map.id_of(obj.class_name) is not None
        or not rules.ignores(obj.class_name, label_map) for obj in annotated.objects)


def _backgrounds(candidates: list[Background], labelled: dict[str, str], canvas_size: int,
                 problems: ProblemLog) -> list[Background]:
    """The candidates that no input labels with objects (a photo listed without objects by one
    input, or given in --background_dirs, and with objects by another is not a background), each
    photo once."""
    backgrounds: dict[str, Background] = {}
    for candidate in candidates:
        keys = _photo_keys(candidate.path)
        matched = next((key for key in keys if key in labelled), None)
        if matched is not None:
            what = "this photo" if matched == keys[0] else "a copy of this photo (the same bytes)"
            problems.report(Problem("background_labelled", candidate.path, f"{labelled[matched]} "
                                    f"labels objects in {what}: a photo with objects is not a "
                                    "background; skipped"))
            continue
        same = next((backgrounds[key] for key in keys if key in backgrounds), None)
        if same is None:
            backgrounds.update(dict.fromkeys(keys, candidate))
            _check_background_size(candidate, canvas_size, problems)
        elif storage.canonical(same.path) != keys[0]:
            problems.report(Problem("duplicate_photo", candidate.path, f"the same bytes as {same.path}; "
                                    "used once, as one background"))
    return list({id(b): b for b in backgrounds.values()}.values())


def _joined_identities(cutouts: list[Cutout], near_duplicates: bool) -> list[Cutout]:
    """Each cutout with its final identity (`spatule_synth.generate.identities.join_identities`): cutouts
    of one first identity, of the same object of byte-identical photos and (``--identity=auto``)
    near-duplicates (the same tag photographed again: shifted, rescaled, re-lit, re-compressed;
    see `spatule_synth.generate.near_duplicates`) share one, so the split never puts one physical object on
    both sides."""
    groups = None
    if near_duplicates:
        from spatule_synth.generate.near_duplicates import group_near_duplicates
        groups = group_near_duplicates([c.object_pixels for c in cutouts])
    names = join_identities([c.identity for c in cutouts],
                            [object_key(c.source_file, c.source_box) for c in cutouts], groups)
    return [dataclasses.replace(c, identity=name) for c, name in zip(cutouts, names)]


def _photo_keys(path: str) -> list[str]:
    """How a photo is recognised as the same photo: its real path and, if it exists, its content."""
    keys = [storage.canonical(path)]
    if storage.is_file(path):
        keys.append(f"content:{content_key(path)}")
    return keys


def annotated_images(inputs: InputsConfig, problems: ProblemLog) -> Iterator[AnnotatedImage]:
    """Labelled photos of every format, in flag order: labelImg folders first."""
    if inputs.input_dirs:
        for pair in find_pairs(inputs.input_dirs, inputs.annotation_dirs, problems):
            yield read_labelimg(pair, problems)
    if inputs.coco_json:
        from spatule_synth.formats.coco import read_coco
        for json_path, image_dir in zip(inputs.coco_json, inputs.coco_image_dirs):
            yield from read_coco(json_path, image_dir, problems)
    if inputs.yolo_dirs:
        from spatule_synth.formats.yolo import read_yolo_folder
        for folder in inputs.yolo_dirs:
            yield from read_yolo_folder(folder, problems)
    if inputs.voc_seg_dirs:
        from spatule_synth.formats.voc_segmentation import read_voc_segmentation
        for root in inputs.voc_seg_dirs:
            yield from read_voc_segmentation(root, problems)
    if inputs.cutout_dirs:
        from spatule_synth.formats.alpha_cutouts import read_alpha_cutouts
        for root in inputs.cutout_dirs:
            yield from read_alpha_cutouts(root, problems)


def _not_a_cutout(obj: ValidObject, width: int, height: int, inputs: InputsConfig,
                  edge_cuts_objects: bool) -> tuple[str, str] | None:
    """``(problem kind, reason)`` if ``obj`` may not be pasted: marked difficult, or cut by its
    photo's edge (marked truncated, or its box touches the border), unless the flags allow it."""
    if obj.difficult and not inputs.use_difficult_cutouts:
        return "difficult_cutout", ("marked difficult in its annotation; not used as a cutout "
                                    "(--use_difficult_cutouts to allow)")
    if inputs.use_truncated_cutouts:
        return None
    if obj.truncated:
        return "truncated_cutout", ("marked truncated in its annotation (only part of it is in the "
                                    "photo); not used as a cutout (--use_truncated_cutouts to allow)")
    box, edge = obj.box, EDGE_PX
    if edge_cuts_objects and (box.xmin <= edge or box.ymin <= edge or box.xmax >= width - edge
                              or box.ymax >= height - edge):
        return "truncated_cutout", (f"its box ({box}) touches the edge of the {width}x{height} photo, "
                                    "so the object may go on beyond it; not used as a cutout "
                                    "(--use_truncated_cutouts to allow)")
    return None


@dataclasses.dataclass(frozen=True, eq=False)
class _Group:
    """One group of overlapping objects of a photo, and whether it may be cut out."""

    members: list[ValidObject]
    refused: dict[int, tuple[str, str] | None]  # object index -> (problem kind, reason) or None
    identity: str | None = None  # its first identity (None: refused, or --identity_regex missed)

    @property
    def cut(self) -> bool:
        return self.identity is not None


def _groups(photo: ValidPhoto, inputs: InputsConfig, split: SplitConfig,
            edge_cuts_objects: bool) -> list[_Group]:
    """The groups of overlapping objects of ``photo``, judged (reports nothing)."""
    objects, image = photo.objects, photo.image
    found = []
    for group in overlapping_groups([obj.box.voc_ints() for obj in objects]):
        members = [objects[i] for i in group]
        refused = {obj.object_index: _not_a_cutout(obj, image.width, image.height, inputs,
                                                   edge_cuts_objects) for obj in members}
        if any(refused.values()):
            found.append(_Group(members, refused))
            continue
        box = group_box([obj.box.voc_ints() for obj in members])
        found.append(_Group(members, refused, first_identity(
            split.identity, split.identity_regex, photo.image_path, box)))
    return found


def _mask_boxes(photo: ValidPhoto, inputs: InputsConfig, split: SplitConfig,
                edge_cuts_objects: bool) -> list[tuple[int, int, int, int]]:
    """The integer boxes `cut_out` will ask ``--mask`` to refine: box-only objects of the groups
    it cuts out."""
    if inputs.mask == "box":
        return []
    return [obj.box.voc_ints() for group in _groups(photo, inputs, split, edge_cuts_objects) if group.cut
            for obj in group.members if obj.mask is None]


def cut_out(photo: ValidPhoto, inputs: InputsConfig, split: SplitConfig, placement: PlacementConfig,
            problems: ProblemLog, make_mask: _MaskMaker, edge_cuts_objects: bool = True) -> list[Cutout]:
    """The cutouts of one photo: overlapping objects grouped (a group with an object that may not
    be pasted is not used); masks made for box-only objects; too-large groups reported."""
    image = photo.image
    cutouts = []
    for group in _groups(photo, inputs, split, edge_cuts_objects):
        members, refused, identity = group.members, group.refused, group.identity
        if any(refused.values()):
            first = next(index for index, why in refused.items() if why)
            for obj in members:
                kind, reason = refused[obj.object_index] or (
                    refused[first][0], f"overlaps object #{first}, which is not used as a cutout; "
                                       "not used either (they would be pasted together)")
                problems.report(photo.problem(kind, reason, obj))
            continue
        if identity is None:
            for obj in members:
                problems.report(photo.problem("identity_unmatched", f"--identity_regex "
                                              f"{split.identity_regex!r} does not match the file "
                                              "name (or its group is empty); object skipped", obj))
            continue
        parts = [PhotoObject(obj.class_name, obj.class_id, obj.box.voc_ints(), make_mask(photo, obj),
                             obj.object_index) for obj in members]
        cutout = cut_group(image.pixels, parts, photo.image_path, identity)
        if _reported_too_large(cutout, members, photo, placement, problems):
            continue
        kept = {part.object_index for part in cutout.parts}
        for obj in members:
            if obj.object_index not in kept:
                problems.report(photo.problem("mask_invalid", "every pixel of its mask belongs to a "
                                              "smaller overlapping object; object dropped", obj))
        cutouts.append(cutout)
    return cutouts


def _reported_too_large(cutout: Cutout, members: list[ValidObject], photo: ValidPhoto,
                        placement: PlacementConfig, problems: ProblemLog) -> bool:
    smallest = placement_geometry(cutout.size, cutout.object_box, placement.scale_range[0])
    if max(smallest.width, smallest.height) <= placement.canvas_size:
        return False
    for obj in members:
        problems.report(photo.problem("cutout_too_large", f"object{' group' if len(members) > 1 else ''} "
                                      f"of {int(cutout.object_box.width)}x"
                                      f"{int(cutout.object_box.height)} px (with its {CUTOUT_MARGIN} px "
                                      "margin, at the smallest --scale_range) does not fit the "
                                      f"{placement.canvas_size}x{placement.canvas_size} canvas; object "
                                      "skipped", obj))
    return True


def _distractors(distractor_dirs: tuple[str, ...], label_map: LabelMap, cutout_files: set[str],
                 problems: ProblemLog) -> list[Cutout]:
    """The unlabelled clutter of ``distractor_dirs``; a file that shows a labelled object (in a
    folder named after a class of the label map, or also a cutout) is refused: it would be pasted
    without a box."""
    if not distractor_dirs:
        return []
    from spatule_synth.formats.alpha_cutouts import read_alpha_cutouts
    found = []
    for root in distractor_dirs:
        for annotated in read_alpha_cutouts(root, problems, allow_flat=True):
            [obj] = annotated.objects
            named = _class_named(obj.class_name, label_map)
            if named is not None or storage.canonical(annotated.image_path) in cutout_files:
                why = (f"its folder {obj.class_name!r} names {named!r}, a class of the label map"
                       if named is not None else "it is also a cutout")
                problems.report(Problem("distractor_labelled", annotated.image_path, f"{why}: a "
                                        "distractor is pasted without a box, so it must show no "
                                        "labelled object; skipped"))
                continue
            try:
                pixels = read_image(annotated.image_path).pixels
            except ImageReadError as error:
                problems.report(Problem("unreadable_image", annotated.image_path, f"{error}; skipped"))
                continue
            for obj in annotated.objects:
                found.append(distractor_cutout(pixels, obj.mask, obj.box.voc_ints(), annotated.image_path))
    return found


def _class_named(folder_name: str, label_map: LabelMap) -> str | None:
    """The label-map class a folder name stands for, in any case, singular or plural, or None."""
    def plain(name: str) -> str:
        name = name.casefold().strip()
        return name[:-2] if name.endswith("es") else name[:-1] if name.endswith("s") else name
    return next((name for name in label_map.names
                 if plain(name) == plain(folder_name) or name.casefold() == folder_name.casefold()), None)


def background_folder_photos(inputs: InputsConfig, problems: ProblemLog) -> list[Background]:
    """The photos of every ``--background_dirs`` folder that may be backgrounds (`_backgrounds_in`)."""
    xml_dirs = {storage.canonical(image_dir): xml_dir
                for image_dir, xml_dir in zip(inputs.input_dirs, inputs.annotation_dirs)}
    found = []
    for folder in inputs.background_dirs:
        label_dirs = [folder] + ([xml_dirs[storage.canonical(folder)]]
                                 if storage.canonical(folder) in xml_dirs else [])
        found.extend(_backgrounds_in(folder, label_dirs, problems))
    return found


def _backgrounds_in(folder: str, label_dirs: list[str], problems: ProblemLog) -> list[Background]:
    """The photos of a ``--background_dirs`` folder, each checked to decode and to have no
    labelImg XML or YOLO txt with objects in ``label_dirs`` (the folder itself, and the
    ``--annotation_dirs`` entry when the folder is also a labelled input)."""
    if not storage.is_dir(folder):
        raise InputDirError(f"background folder {folder} does not exist or is not a folder")
    images, unsupported = images_by_key(folder)
    labels: dict[str, list[str]] = {}
    for label_dir in {storage.canonical(d): d for d in label_dirs}.values():
        for path in list_dir(label_dir):
            if is_voc_xml(path) or is_yolo_txt(path):
                labels.setdefault(label_key(path, images, unsupported), []).append(path)
    for path in sorted(p for paths in unsupported.values() for p in paths):
        problems.report(Problem("unsupported_image", path, f"{unsupported_format(path)}; "
                                "background skipped"))
    found = []
    for path in sorted(p for paths in images.values() for p in paths):
        said = next(((label, objects) for label in labels.get(stem_key(path), [])
                     if (objects := _objects_in_label_file(label))), None)
        if said:
            problems.report(Problem("background_labelled", path, f"its annotation file {said[0]} "
                                    f"{said[1]}: a photo with objects is not a background; skipped "
                                    "(give labelled folders as --input_dirs)"))
            continue
        # a URL is downloaded once, into the local copy the workers will decode
        local = storage.local_copy(path, storage.input_cache_dir()) if storage.is_url(path) else ""
        try:  # decoded once, so a corrupt photo is caught here and not in a worker
            width, height = check_image(local or path)
        except ImageReadError as error:
            problems.report(Problem("unreadable_image", path, f"{error}; background skipped"))
            continue
        found.append(Background(path, width, height, local))
    return found


def _objects_in_label_file(path: str) -> str | None:
    """What a labelImg XML or YOLO txt beside a background photo says against its use, e.g.
    ``"has 2 objects"``; None if it says the photo has no object."""
    if path.lower().endswith(".txt"):
        try:
            lines = [line for line in storage.read_bytes(path).splitlines() if line.strip()]
        except OSError as error:
            return f"cannot be read ({error.strerror or error})"
        return f"has {len(lines)} YOLO object line(s)" if lines else None
    bad: list[int] = []
    try:
        annotation = read_voc(path, on_bad_object=lambda index, name, reason: bad.append(index))
    except VocFormatError as error:
        return f"cannot be read ({str(error).removeprefix(f'{path}: ')})"
    count = len(annotation.objects) + len(bad)
    return f"has {count} object{'s' if count > 1 else ''}" if count else None


def _check_background_size(background: Background, canvas_size: int, problems: ProblemLog) -> None:
    width, height = background.width, background.height
    if min(width, height) < canvas_size:
        problems.report(Problem("background_small", background.path, f"{width}x{height} is smaller "
                                f"than the {canvas_size}x{canvas_size} canvas; it is "
                                "upscaled to cover it"))
