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

    def new(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, a: int) -> int:
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

    def block(self, labels, reason: str) -> None:
        for a in np.unique(np.asarray(labels)):
            if a != FIXED:
                lst = self.reasons.setdefault(int(a), [])
                if reason not in lst:
                    lst.append(reason)

    def roots(self, labels: np.ndarray) -> np.ndarray:
        """Class id per position (FIXED stays FIXED)."""
        labels = np.asarray(labels)
        out = np.full(labels.shape, FIXED, dtype=np.int64)
        for i, a in enumerate(labels.ravel()):
            if a != FIXED:
                out.flat[i] = self.find(int(a))
        return out
