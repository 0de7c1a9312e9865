"""`If`: the analysis descends into both branches (they read outer values by name, so channels
flow in as anywhere else). Output k of the `If` is output k of whichever branch runs, so its
positions carry both branches' channels: they are coupled position by position. A channel axis
one branch tracks and the other does not cannot shrink in the other branch: blocked."""

from __future__ import annotations

from ...core.graph import attr, node_label
from .base import Handler
from .registry import register


@register("If")
class IfHandler(Handler):
    def propagate(self, node, ctx):
        branches = [attr(node, "then_branch"), attr(node, "else_branch")]
        for body in branches:
            ctx.descend(body)
        for k, out in enumerate(node.output):
            if not out:
                continue
            results = [body.output[k].name for body in branches]
            for name in results:
                ctx.resolve_multi(name)
            axes = set(ctx.tracked(results[0])) | set(ctx.tracked(results[1]))
            for axis in sorted(axes):
                labels = [ctx.tracked(r).get(axis) for r in results]
                if any(lab is None for lab in labels):
                    for lab in labels:
                        if lab is not None:
                            ctx.block(lab, f"{node_label(node)}: only one branch carries channels on output "
                                           f"{k} axis {axis}")
                    continue
                ctx.couple(labels[0], labels[1], f"{node_label(node)} output {k} (then/else)")
                ctx.set_labels(out, axis, labels[0])
        if any(ctx.tracked(o) for o in node.output):
            ctx.needs_rewrite(node)

    def rewrite(self, node, ctx):
        """Branch outputs declare shapes: shrink the tracked dims so the declarations stay true."""
        for body in (attr(node, "then_branch"), attr(node, "else_branch")):
            for vi in body.output:
                if not vi.type.tensor_type.HasField("shape"):
                    continue
                for axis in ctx.tracked_axes(vi.name):
                    keep = ctx.kept(vi.name, axis)
                    dims = vi.type.tensor_type.shape.dim
                    if keep is not None and axis < len(dims) and dims[axis].HasField("dim_value"):
                        dims[axis].dim_value = int(keep.sum())
