"""The guarantee, as properties: what `stepc check` accepts compiles to valid Python
and traces; no input crashes the compiler.

The specs come from `tests.support.generators.specs` (well-formed specs built from the
language's constructs) and `tests.support.generators.errors` (the same with one deliberate
error), drawn through hypothesis's `st.randoms()` so a failure shrinks. For every
generated spec:

* `stepc.compile_source` returns text or raises `stepc.SpecError`, nothing else;
* the text is valid Python (`compile()`), and compiling twice gives the same text;
* a near-miss is refused, every error on a line of the file, one on the wrong line.

For a small sample of accepted specs (TensorFlow), the module is executed, the
models are built from the generator's harness description (sub-models
`Dense(4)` on (batch, 4), a two-output sub-model for `Model2`, the Functional
model likewise, SGD optimizers, MSE losses, 2 for an int and 0.5 for a float)
and `fit` / `evaluate` / `predict` run one batch, which traces every generated
step; a third of the examples run under the "mixed_float16" dtype policy.

Examples per property: STEPC_FUZZ_EXAMPLES (default 150 compile-only; the
TensorFlow property runs STEPC_FUZZ_TF_EXAMPLES, default 8). Derandomized, so CI
is stable; `scripts/fuzz.py` runs the same generator for as long as wanted.
"""

from __future__ import annotations

import os
import types

import pytest
import stepc
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from stepc.diagnostics import Severity

from tests.support.generators import errors as spec_errors
from tests.support.generators import layout as spec_layout
from tests.support.generators.specs import FLOAT_VALUE, INT_VALUE, Generated, ModelHarness, generate

EXAMPLES = int(os.environ.get("STEPC_FUZZ_EXAMPLES", "150"))
TF_EXAMPLES = int(os.environ.get("STEPC_FUZZ_TF_EXAMPLES", "8"))
BATCH = 8

settings.register_profile(
    "stepc-properties",
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("stepc-properties")


@st.composite
def specs(draw) -> Generated:
    return generate(draw(st.randoms(use_true_random=False)))


@st.composite
def near_misses(draw) -> Generated:
    rng = draw(st.randoms(use_true_random=False))
    return generate(rng, error=spec_errors.pick(rng))


def compile_or_refuse(text: str) -> str | None:
    """The module text, or None for a SpecError; any other exception fails the test."""
    try:
        return stepc.compile_source(text, "generated.step")
    except stepc.SpecError as exc:
        lines = text.count("\n") + 1
        for diagnostic in exc.diagnostics:
            assert 1 <= diagnostic.span.line <= lines, diagnostic
        return None


# ---------------------------------------------------------------- compile only


@settings(PROFILE, max_examples=EXAMPLES)
@given(spec=specs())
def test_generated_specs_compile_to_valid_deterministic_python(spec: Generated) -> None:
    module = compile_or_refuse(spec.text)
    if module is None:
        return
    compile(module, "generated.py", "exec")
    assert stepc.compile_source(spec.text, "generated.step") == module


@settings(PROFILE, max_examples=EXAMPLES)
@given(spec=near_misses())
def test_near_misses_are_refused_on_their_line(spec: Generated) -> None:
    with pytest.raises(stepc.SpecError) as raised:
        stepc.compile_source(spec.text, "generated.step")
    errors = [d for d in raised.value.diagnostics if d.severity is Severity.ERROR]
    lines = spec.text.count("\n") + 1
    assert errors and all(1 <= d.span.line <= lines for d in errors)
    assert spec.error_line in {d.span.line for d in errors}, (spec.error, errors)


@settings(PROFILE, max_examples=EXAMPLES // 2)
@given(spec=specs(), rng=st.randoms(use_true_random=False))
def test_layout_does_not_change_the_module(spec: Generated, rng) -> None:
    """Comments, blank lines, CRLF, tabs and broken lines change nothing but line numbers."""
    relaid = spec_layout.relayout(rng, spec.text)
    before, after = compile_or_refuse(spec.text), compile_or_refuse(relaid)
    assert (before is None) == (after is None)
    if before is not None:
        assert spec_layout.same_module(before, after)


def test_most_generated_specs_are_accepted() -> None:
    """The generator is useful only if most of its specs reach lowering and emission."""
    import random

    outcomes = [compile_or_refuse(generate(random.Random(seed)).text) for seed in range(60)]
    assert sum(m is not None for m in outcomes) > 0.5 * len(outcomes)


# ---------------------------------------------------------------- tracing


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
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = (rng.normal(size=(BATCH, 4)).astype("float32") for _ in range(2))
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


# Shrinking would re-run TensorFlow hundreds of times: the failing spec is printed as is.
TF_SETTINGS = settings(
    PROFILE, max_examples=TF_EXAMPLES, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@TF_SETTINGS
@given(spec=specs(), policy=st.sampled_from(["float32", "float32", "mixed_float16"]))
def test_accepted_specs_trace_with_keras(spec: Generated, policy: str) -> None:
    module = compile_or_refuse(spec.text)
    assume(module is not None)
    print(spec.text)  # shown by pytest when the test fails
    trace(spec, module, policy)
