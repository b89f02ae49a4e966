"""Identities: which cutouts show the same physical object, so they always share a split.

A photo is known by its **content** (`content_key`: the SHA-256 of its file's bytes), never by its
path: a copy of a photo under another name, or one photo read through two formats (a labelImg
folder and a COCO file), is one photo. The first identity of a cutout (`first_identity`) follows
``--identity``:

* ``image``  every object of one photo: ``photo:<content>``;
* ``object`` one object (one group of overlapping objects): ``photo:<content>#x0,y0,x1,y1``;
* ``regex``  the first group of ``--identity_regex`` over the file name (else the whole match);
* ``auto``   as ``image``; then cutouts that look like the same object photographed again
  (`spatule_synth.generate.near_duplicates`) are joined.

`join_identities` then joins, transitively, every cutout that shares a first identity, or the same
object of the same content (a byte-identical copy read under another name or format), or (auto) a
near-duplicate group. A joined identity is named by its smallest first identity, so the name, and
with it the split (`spatule_synth.generate.split`), does not depend on the order inputs are read in. It
does depend on the members: a new photo that joins a group with a smaller first identity renames
it, and the group may change sides (no rule can avoid that when a new photo joins two identities
that drew different sides).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Sequence

from spatule_synth.core.disjoint_sets import DisjointSets
from spatule_synth.core import storage

_CONTENT_HEX = 16  # 64 bits of SHA-256: no two photos of a data set collide
_content_cache: dict[tuple[str, int, str], str] = {}


def content_key(path: str) -> str:
    """The first 16 hex digits of the SHA-256 of the file's bytes (cached per path, size and
    modification time; a URL is read from its local copy, `storage.local_copy`, so that a photo
    behind a URL is downloaded once however often it is checked)."""
    size, mark = storage.signature(path)
    cache_key = (storage.canonical(path), size, mark)
    if cache_key not in _content_cache:
        digest = hashlib.sha256()
        source = storage.local_copy(path, storage.input_cache_dir()) if storage.is_url(path) else path
        with storage.open_binary(source) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _content_cache[cache_key] = digest.hexdigest()[:_CONTENT_HEX]
    return _content_cache[cache_key]


def first_identity(mode: str, regex: str, path: str, box: tuple[int, int, int, int]) -> str | None:
    """The identity of a cutout of ``path`` with group box ``box`` before joining; None if
    ``--identity_regex`` does not match the file name (or its group is empty)."""
    if mode in ("image", "auto"):
        return f"photo:{content_key(path)}"
    if mode == "object":
        return f"photo:{content_key(path)}#{','.join(str(v) for v in box)}"
    match = re.search(regex, os.path.basename(path))
    if match is None:
        return None
    return (match.group(1) if match.re.groups else match.group(0)) or None


def object_key(path: str, box: tuple[int, int, int, int]) -> str:
    """One object of one photo's content: the same for a byte-identical copy of the photo."""
    return f"{content_key(path)}#{','.join(str(v) for v in box)}"


def join_identities(first: Sequence[str], objects: Sequence[str],
                    near_duplicate_groups: Sequence[int] | None = None) -> list[str]:
    """The final identity of each cutout, given its first identity, its `object_key` and (auto)
    its near-duplicate group number: cutouts linked by any of the three share the smallest first
    identity of their set."""
    sets = DisjointSets(len(first))
    for keys in (first, objects, near_duplicate_groups or ()):
        seen: dict = {}
        for index, key in enumerate(keys):
            sets.join(seen.setdefault(key, index), index)
    smallest: dict[int, str] = {}
    for index, name in enumerate(first):
        root = sets.root(index)
        smallest[root] = min(smallest.get(root, name), name)
    return [smallest[sets.root(index)] for index in range(len(first))]
