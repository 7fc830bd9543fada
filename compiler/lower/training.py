"""Each model call's mode: the lowering writes `training=` into every call.

Owns the decision Keras's own steps make implicitly: a model called in a train
step runs in training mode (Dropout drops, BatchNorm uses and updates the batch
statistics), except a `FrozenModel` (a teacher, a fixed feature extractor),
which always runs in inference mode; in a test or predict step every model runs
in inference mode. A `training=` the spec writes itself is kept. The backends
only spell the keyword.
"""

from __future__ import annotations

import dataclasses

from stepc.parse import ir


def with_training_mode(body, training: bool, models: set[str], frozen: set[str]):
    """`body` with `training=True/False` added to every call of a model."""

    def mode(node):
        if not isinstance(node, ir.Call) or node.func.id not in models | {"self"}:
            return node
        if any(k.name == "training" for k in node.keywords):
            return node
        on = training and node.func.id not in frozen
        keyword = ir.Keyword("training", ir.Name("True" if on else "False", node.span), node.span)
        return dataclasses.replace(node, keywords=(*node.keywords, keyword))

    return tuple(_rewritten(statement, mode) for statement in body)


def _rewritten(node, rewrite):
    """`node` with `rewrite` applied to every IR node below it, bottom up."""
    if isinstance(node, tuple):
        return tuple(_rewritten(item, rewrite) for item in node)
    return rewrite(ir.rebuilt(node, lambda child: _rewritten(child, rewrite)))
