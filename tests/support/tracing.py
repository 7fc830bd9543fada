"""Tracing a generated spec's models: build each as the generator's harness
describes it and run one batch of every step it defines.

Used by `tests/test_properties.py` (TensorFlow, in the pytest process) and by
`tests/support/trace_worker.py` (JAX and PyTorch, one process per backend): sub-models
`Dense(4)` on (batch, 4), a two-output sub-model for `Model2`, the Functional
model likewise, SGD optimizers, MSE losses, 2 for an int and 0.5 for a float.
"""

from __future__ import annotations

import types

from tests.support.generators.specs import FLOAT_VALUE, INT_VALUE, Generated, ModelHarness

BATCH = 8


def _keras_values():
    import keras

    def sub_model():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])

    def two_outputs():
        inputs = keras.Input((4,))
        return keras.Model(inputs, [keras.layers.Dense(4)(inputs), keras.layers.Dense(4)(inputs)])

    return {
        "Model": sub_model,
        "Model2": two_outputs,
        "FrozenModel": sub_model,
        "Optimizer": lambda: keras.optimizers.SGD(0.01),
        "Loss": keras.losses.MeanSquaredError,
        "int": lambda: INT_VALUE,
        "float": lambda: FLOAT_VALUE,
    }


def build(module: types.ModuleType, harness: ModelHarness, **options):
    """A compiled model of the generated class, as the harness describes it."""
    import keras

    values = _keras_values()
    cls = getattr(module, harness.name)
    if harness.functional:
        inputs = keras.Input((4,))
        model = cls(inputs, keras.layers.Dense(4)(inputs))
    else:
        model = cls(**{name: values[type_]() for name, type_ in harness.init})
    if harness.compile is None:
        compiled = {"loss": "mse"} if harness.uses_compiled else {}
        model.compile(optimizer=keras.optimizers.SGD(0.01), **compiled, **options)
    else:
        model.compile(**{name: values[type_]() for name, type_ in harness.compile}, **options)
    return model


def batch(parts: int):
    """x and y in [0, 1): either may be a target of any loss the generator names
    (`l(x, m(x))` too), and PyTorch's binary cross-entropy refuses targets outside
    [0, 1] (TensorFlow and JAX compute it anyway)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = (rng.uniform(size=(BATCH, 4)).astype("float32") for _ in range(2))
    weight = rng.uniform(size=(BATCH,)).astype("float32")
    return [x, y, weight][:parts]


def run_steps(model, harness: ModelHarness) -> None:
    """One batch of each step the spec defines (fit, evaluate, predict): traces them."""
    steps = harness.steps
    if "train" in steps:
        data = batch(len(steps["train"]))
        weights = {"sample_weight": data.pop()} if len(data) == 3 else {}
        model.fit(*data, **weights, batch_size=BATCH, epochs=1, verbose=0)
    test = _test_data(harness)
    if test:
        data = batch(len(test))
        weights = {"sample_weight": data.pop()} if len(data) == 3 else {}
        model.evaluate(*data, **weights, batch_size=BATCH, verbose=0)
    if "predict" in steps:
        model.predict(batch(1)[0], batch_size=BATCH, verbose=0)


def _test_data(harness: ModelHarness) -> list | None:
    """The test step's data line; a Functional model's derived test step takes the train's."""
    steps = harness.steps
    if "test" in steps:
        return steps["test"]
    derived = harness.functional and harness.has_metrics and not harness.uses_compiled
    if derived and "train" in steps:
        return steps["train"]
    return None


# The one trace-time refusal a generated spec may meet: a model without trackers whose
# step has no `return` and nothing compiled to report (it names the spec line).
NOTHING_TO_REPORT = "the step reports nothing"


def run_steps_or_nothing_to_report(model, harness: ModelHarness) -> None:
    """run_steps, where the documented nothing-to-report error counts as traced."""
    try:
        run_steps(model, harness)
    except ValueError as exc:
        if NOTHING_TO_REPORT not in str(exc):
            raise


def trace(spec: Generated, module_text: str, policy: str = "float32", **options) -> None:
    """Build and run every model of the spec (under a dtype policy such as
    "mixed_float16", which the generated steps must also trace under)."""
    import keras

    keras.utils.set_random_seed(0)
    module = types.ModuleType("stepc_property_module")
    exec(compile(module_text, "generated.py", "exec"), module.__dict__)
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    try:
        for harness in spec.models:
            run_steps_or_nothing_to_report(build(module, harness, **options), harness)
    finally:
        keras.config.set_dtype_policy(previous)
