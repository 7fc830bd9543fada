"""Deliberately wrong variants of the references of the published specs that keep state
(``adamatch.py``, ``nnclr.py``).

Each differs from its reference in one realistic mistake about the state or what reads
it. ``test_published_state_specs.py`` trains each in the reference's scenario and checks
that the comparison the generated models pass fails for it: a comparison that passed these
would not show that the generated step keeps and uses its state as the spec says.
"""

from __future__ import annotations

from keras import ops

from tests.references.adamatch import AdaMatchReference
from tests.references.nnclr import NNCLRReference


class AdaMatchCounterNeverMoves(AdaMatchReference):
    """The step counter is read but never incremented: the target loss weight stays 0."""

    def train_step(self, data):
        logs = super().train_step(data)
        self.step.assign(self.step - 1)  # undo the reference's increment
        return logs


class AdaMatchAbsoluteThreshold(AdaMatchReference):
    """A fixed confidence threshold ``tau`` (FixMatch's), not relative to the source's
    mean confidence."""

    def pseudo_labels(self, source_weak_logits, target_weak_logits):
        aligned, _ = super().pseudo_labels(source_weak_logits, target_weak_logits)
        return aligned, ops.max(aligned, axis=-1) >= self.tau


class NNCLRQueueNeverRolled(NNCLRReference):
    """The queue is never updated: the positives come from its initial random rows."""

    def roll_queue(self, projections):
        pass
