"""Evaluating `auto`'s candidates ahead, in parallel, without changing the search.

The greedy search tries one step at a time. After a rejected step only the frozen set changes, so
the next step is the next entry of `auto._ranked_steps` from the same widths: the best `slots`
steps can be evaluated at once (on an executor, e.g. Ray workers) and consumed in order. An
accepted step changes the widths and the rest are dropped. The path and every number equal the
one-by-one search; only evaluations are spent ahead (counted, and reported as unused).
"""

from __future__ import annotations

from ..core import external


def candidate_metrics(context, trial: dict) -> dict:
    """Build the candidate at these widths, (compensate,) evaluate it."""
    space, evaluate, compensate = context
    with external.scratch():
        model = space.build(trial)
        if compensate is not None:
            model = compensate(model, space.plan(trial))
        return evaluate(model)


class CandidateWork:
    def __init__(self, recipe, evaluate, compensate):
        self.recipe, self.evaluate, self.compensate, self.key = recipe, evaluate, compensate, recipe.key

    def materialize(self):
        return self.recipe.build(), self.evaluate, self.compensate


class Lookahead:
    """Evaluates the next `executor.slots` candidates at once: the best step and the ones the
    search would take if those before it were rejected."""

    def __init__(self, executor, space, evaluate, compensate):
        self.executor, self.context = executor, CandidateWork(space.recipe(), evaluate, compensate)
        self.ready: dict = {}
        self.evaluated = 0

    def metrics(self, trial: dict, keep: dict, ranked) -> dict:
        """`trial`'s metrics; `ranked()` lists the (group, width) steps from `keep`, best first."""
        key = tuple(sorted(trial.items()))
        if key not in self.ready:
            trials = [dict(keep, **{n: w}) for n, w in ranked()[:self.executor.slots]]
            trials = [trial] + [t for t in trials if t != trial]
            found = self.executor.map_values(candidate_metrics, trials, context=self.context, quiet=True)
            self.ready = {tuple(sorted(t.items())): m for t, m in zip(trials, found)}
            self.evaluated += len(trials)
        return self.ready.pop(key)
