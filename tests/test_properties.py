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

import pytest
import stepc
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from stepc.diagnostics import Severity

from tests.support.generators import errors as spec_errors
from tests.support.generators import layout as spec_layout
from tests.support.generators.specs import Generated, generate
from tests.support.tracing import trace

EXAMPLES = int(os.environ.get("STEPC_FUZZ_EXAMPLES", "150"))
TF_EXAMPLES = int(os.environ.get("STEPC_FUZZ_TF_EXAMPLES", "8"))

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
