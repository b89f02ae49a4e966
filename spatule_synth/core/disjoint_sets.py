"""Disjoint sets (union-find): what joins transitively, numbered by first member.

Used wherever items join in groups through pairs: overlapping boxes of a photo
(`spatule_synth.generate.cutouts`), near-duplicate cutouts (`spatule_synth.generate.near_duplicates`).
"""

from __future__ import annotations


class DisjointSets:
    def __init__(self, count: int) -> None:
        self._parent = list(range(count))

    def root(self, item: int) -> int:
        parent = self._parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def join(self, a: int, b: int) -> None:
        """Put ``a`` and ``b`` (and their sets) in one set."""
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def group_numbers(self) -> list[int]:
        """A group number per item: 0, 1, ... in the order of each group's first member."""
        numbers: dict[int, int] = {}
        return [numbers.setdefault(self.root(i), len(numbers)) for i in range(len(self._parent))]
