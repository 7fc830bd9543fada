"""How the names of a spec are spelled in a generated Python module.

Owns the mapping from a spec name to Python: model-held names become
`self.<name>`, step values stay plain locals, constants stay themselves; and
fresh local names for what the backend adds (gradients, variable lists) that
can never collide with a spec's own names.
"""

from __future__ import annotations

from stepc.lower.plan import ModelPlan, StepPlan, fresh_name

_CONSTANTS = {"True", "False", "None", "self"}


class Names:
    def __init__(self, model: ModelPlan):
        # Keras's own compile() arguments are not the model's names (a step's local
        # may be called `loss`), except `optimizer`, which Keras's compile() sets.
        own = [p.name for p in model.compile or () if not p.keras]
        held = [p.name for p in model.init] + own
        held += [d.name for d in (*model.metrics, *model.losses, *model.optimizers)]
        held += [state.name for state in model.states]
        self.attributes = set(held)
        # A state reads as its variable's current value (on JAX, the step's scope's).
        self.states = {state.name for state in model.states}
        keras_optimizer = any(p.keras and p.name == "optimizer" for p in model.compile or ())
        if model.compile is None or keras_optimizer:
            self.attributes.add("optimizer")
        self.taken: set[str] = set()

    def enter(self, step: StepPlan) -> None:
        self.taken = set(step.taken)

    def python(self, name: str) -> str:
        if name in self.states:
            return f"self.{name}.value"
        if name in self.attributes:
            return f"self.{name}"
        return name

    def fresh(self, base: str) -> str:
        return fresh_name(base, self.taken)
