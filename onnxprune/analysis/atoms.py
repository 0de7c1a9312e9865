"""Channel provenance as union-find over atoms.

Every prunable unit is born at a *source* (a Conv's output channel, a Gemm's output column):
each gets an integer atom id. A tracked tensor axis carries one label per position — the atom
that position came from, or FIXED for positions that can never be removed (a graph input's
channels, a constant concatenated in). Ops that make two positions inseparable (a residual
Add, a Concat along another axis) union their atoms. A *channel* is then a union-find class,
and a *group* is a set of sources whose atoms were united. This handles Concat offsets,
Flatten blocks and repeated depthwise channels with one mechanism: positions are looked up by
label, never by arithmetic on offsets.
"""

from __future__ import annotations

import numpy as np

FIXED = -1


class Atoms:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.reasons: dict[int, list[str]] = {}
        self._table: np.ndarray | None = None  # root of every atom, valid until the next new/union

    def new(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self._table = None
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, a: int) -> int:
        if self._table is not None:
            return int(self._table[a])
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
            self._table = None

    def block(self, labels, reason: str) -> None:
        for a in np.unique(np.asarray(labels)):
            if a != FIXED:
                lst = self.reasons.setdefault(int(a), [])
                if reason not in lst:
                    lst.append(reason)

    def table(self) -> np.ndarray:
        """The root of every atom, by pointer jumping over the whole forest at once (vectorised);
        cached until the forest changes, so reading roots after the analysis costs one lookup."""
        if self._table is None:
            parent = np.asarray(self.parent, dtype=np.int64)
            while True:
                grand = parent[parent]
                if np.array_equal(grand, parent):
                    break
                parent = grand
            self._table = parent
        return self._table

    def roots(self, labels: np.ndarray) -> np.ndarray:
        """Class id per position (FIXED stays FIXED)."""
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size == 0:
            return np.full(labels.shape, FIXED, dtype=np.int64)
        table = self.table()
        return np.where(labels == FIXED, FIXED, table[np.where(labels == FIXED, 0, labels)])
