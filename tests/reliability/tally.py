"""Outcome counts of the corpora, printed at the end of every test run (see conftest.py), so CI
logs show how many cases passed, declined with a reason, or failed."""

from __future__ import annotations

from collections import Counter

COUNTS: dict[str, Counter] = {}


def record(corpus: str, status: str, n: int = 1) -> None:
    COUNTS.setdefault(corpus, Counter())[status] += n


def lines() -> list[str]:
    out = []
    for corpus, counts in COUNTS.items():
        counts.setdefault("failed", 0)
        out.append(f"{corpus}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return out
