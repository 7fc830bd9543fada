"""The compiler's Keras facts, checked against the pinned Keras.

The compiler never imports Keras: its operation table (`stepc.tables.builtins.OPS`,
built by `stepc.tables.ops_table` from the generated `stepc.tables.ops_signatures`) and the
names Keras keeps on a model (`stepc.tables.keras_names`) are data. These tests
import Keras and fail when the data and the installed Keras disagree: an
operation's parameters (names, order, defaults, keyword-only, `*varargs`),
every function of keras.ops, keras.ops.image, keras.random and keras.losses
either in the table or left out with a reason, the signatures on each
backend, and every public attribute of a built, compiled, fitted, evaluated and
predicted `keras.Model` subclass and Functional model.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from stepc.tables.builtins import (
    DTYPES,
    LABELS_UPDATE_PARAMS,
    LOSS_CALL_PARAMS,
    LOSS_CLASSES,
    METRIC_CLASSES,
    OP_ALIASES,
    OPS,
    STEPC_OPS,
    VALUES_UPDATE_PARAMS,
    MetricArgs,
    Op,
    default_metric_name,
)
from stepc.tables.keras_names import (
    FUNCTIONAL_ATTRIBUTES,
    KERAS_CONSTRUCTORS,
    KERAS_FUNCTIONS,
    SUBCLASS_ATTRIBUTES,
)
from stepc.tables.keras_summaries import SUMMARIES
from stepc.tables.ops_signatures import SIGNATURES
from stepc.tables.ops_table import (
    ANY_RANK,
    ELEMENTWISE,
    EXCLUDED,
    KIND_OVERRIDES,
    NOT_DIFFERENTIABLE,
    REDUCTIONS,
    TUPLES,
    qualified_name,
)

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "keras_names.py"

KERAS_OPS = [op for op in OPS.values() if op.name not in STEPC_OPS]
MODULES = {"keras.ops": keras.ops, "keras.ops.image": keras.ops.image}
MODULES |= {"keras.random": keras.random, "keras.losses": keras.losses}


def _keras_function(op: Op):
    module, _, name = qualified_name(op).rpartition(".")
    return getattr(MODULES[module], name, None)


def _keras_functions() -> set[str]:
    """Every public function of the modules a spec calls into, qualified."""
    return {
        f"{prefix}.{name}"
        for prefix, module in MODULES.items()
        for name in dir(module)
        if not name.startswith("_") and inspect.isfunction(getattr(module, name))
    }


def _defaults(parameters) -> dict[str, str]:
    return {n: repr(p.default) for n, p in parameters.items() if p.default is not p.empty}


@pytest.mark.parametrize("op", KERAS_OPS, ids=[op.name for op in KERAS_OPS])
def test_operation_has_kerass_parameters_and_defaults(op: Op) -> None:
    """The entry binds as the Keras function does: the same positional and
    keyword-only parameters in order, the same `*varargs`, the same defaults;
    only `seed` is left out, for the compiler gives the model's seed generator."""
    function = _keras_function(op)
    assert function is not None, f"{qualified_name(op)} is not in the installed Keras"
    parameters = inspect.signature(function).parameters
    kinds = {n: p.kind for n, p in parameters.items() if n != "seed"}
    positional = [n for n, k in kinds.items() if k in (k.POSITIONAL_ONLY, k.POSITIONAL_OR_KEYWORD)]
    assert list(op.params) == positional
    assert list(op.keywords) == [n for n, k in kinds.items() if k is k.KEYWORD_ONLY]
    assert op.varargs == next((n for n, k in kinds.items() if k is k.VAR_POSITIONAL), "")
    assert op.by_position == [*kinds.values()].count(inspect.Parameter.POSITIONAL_ONLY)
    required = [n for n in positional if parameters[n].default is parameters[n].empty]
    assert list(op.params[: op.required]) == required
    defaults = {n: d for n, d in _defaults(parameters).items() if n != "seed"}
    assert {p: ast.literal_eval(d) for p, d in op.defaults} == {
        n: ast.literal_eval(d) for n, d in defaults.items()
    }
    assert op.random == ("seed" in parameters)


def test_every_keras_function_is_in_the_table_or_left_out_with_a_reason() -> None:
    offered = {qualified_name(op) for op in KERAS_OPS}
    unaccounted = sorted(_keras_functions() - offered - set(EXCLUDED))
    assert not unaccounted, f"add these to stepc.tables.ops_table or its EXCLUDED: {unaccounted}"
    assert not offered & set(EXCLUDED)
    assert set(EXCLUDED) <= _keras_functions(), "EXCLUDED names a function Keras lacks"
    assert all(reason.strip() for reason in EXCLUDED.values())


def test_a_bare_name_means_one_function() -> None:
    """Two modules offering one bare name would make a spec's call ambiguous."""
    names = [q.rpartition(".")[2] for q in _keras_functions() if q not in EXCLUDED]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_losses_offered_are_per_sample() -> None:
    for op in KERAS_OPS:
        if op.target.startswith("keras.losses."):
            assert op.params[:2] == ("y_true", "y_pred"), op


def test_hand_kept_facts_name_operations_of_the_table() -> None:
    """The overlay's sets name entries (a misspelling would silently do nothing)."""
    for facts in (ELEMENTWISE, REDUCTIONS, TUPLES, ANY_RANK, NOT_DIFFERENTIABLE):
        assert facts <= set(OPS), sorted(facts - set(OPS))
    assert set(KIND_OVERRIDES) <= set(OPS)
    for name in REDUCTIONS:
        assert "axis" in OPS[name].params, name


def test_parameter_kinds_name_parameters_of_their_operations() -> None:
    for name, overrides in KIND_OVERRIDES.items():
        op = OPS[name]
        for param, _ in overrides:
            assert param in (*op.params, *op.keywords, op.varargs), (name, param)


def test_aliases_name_operations() -> None:
    """A meaning-alike name points at an operation of the table, and is no
    Keras function's own name (that one would mean itself)."""
    bare = {q.rpartition(".")[2] for q in _keras_functions()}
    for alias, meant in OP_ALIASES.items():
        assert meant in OPS, (alias, meant)
        assert alias not in OPS and alias not in bare, alias


def test_table_targets_are_the_non_keras_entries_only() -> None:
    """Every entry is either checked above or knowingly stepc's own."""
    assert {op.name for op in OPS.values() if op.name not in STEPC_OPS} == {
        op.name for op in KERAS_OPS if _keras_function(op) is not None
    }


@pytest.mark.parametrize("name", sorted(METRIC_CLASSES))
def test_metric_class_and_its_default_name(name: str) -> None:
    """The checker predicts each metric's name in the logs (Keras does not make
    default names unique: two `Mean()` are both "mean")."""
    assert getattr(keras.metrics, name)().name == default_metric_name(name)


@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_loss_class_exists(name: str) -> None:
    assert isinstance(getattr(keras.losses, name)(), keras.losses.Loss)


@pytest.mark.parametrize("name", DTYPES)
def test_listed_dtype_is_a_keras_dtype(name: str) -> None:
    """The checker accepts exactly these as a `dtype` argument (F10)."""
    assert keras.backend.standardize_dtype(name) == name


# ---------------------------------------------------------------- model attributes


def _introspect(backend: str) -> dict[str, list[str]]:
    """Run the generator script's introspection under `backend` (a fresh process,
    since Keras picks its backend once per process)."""
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--print-json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def _check_backend(backend: str) -> None:
    found = _introspect(backend)
    constructors = {k: list(v) for k, v in KERAS_CONSTRUCTORS.items()}
    assert found.pop("constructors") == constructors, "run `python scripts/keras_names.py`"
    # The operation table's signatures are the same on every backend.
    assert found.pop("signatures") == SIGNATURES, "run `python scripts/keras_names.py`"
    # What the hover says each function and class does is Keras's own first sentence.
    assert found.pop("summaries") == SUMMARIES, "run `python scripts/keras_names.py`"
    data = {
        "subclass": SUBCLASS_ATTRIBUTES,
        "functional": FUNCTIONAL_ATTRIBUTES,
        "operations": KERAS_FUNCTIONS,
    }
    for base, names in found.items():
        missing = sorted(set(names) - data[base])
        assert not missing, (
            f"Keras ({backend}) has these public {base} names that stepc.tables.keras_names "
            f"lacks: {missing}; run `python scripts/keras_names.py`"
        )


def test_keras_model_attributes_are_all_reserved_tensorflow() -> None:
    _check_backend("tensorflow")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_model_attributes_are_all_reserved_other_backends(backend: str) -> None:
    module = "jax" if backend == "jax" else "torch"
    if find_spec(module) is None:
        pytest.skip(f"{module} is not installed (the {backend} backend cannot be introspected)")
    _check_backend(backend)


# ---------------------------------------------------------------- calls of a spec's objects


def _parameters(function) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    signature = inspect.signature(function)
    return [n for n, p in signature.parameters.items() if p.kind in kinds and n != "self"]


def test_loss_object_call_parameters() -> None:
    assert _parameters(keras.losses.Loss.__call__) == list(LOSS_CALL_PARAMS)


@pytest.mark.parametrize("name", sorted(METRIC_CLASSES))
def test_metric_update_parameters(name: str) -> None:
    labels = METRIC_CLASSES[name] is MetricArgs.LABELS
    params = LABELS_UPDATE_PARAMS if labels else VALUES_UPDATE_PARAMS
    assert _parameters(getattr(keras.metrics, name)().update_state)[: len(params)] == list(params)


def test_constructors_require_nothing() -> None:
    """A declaration may give no argument: every constructor parameter has a default."""
    for qualified in KERAS_CONSTRUCTORS:
        module, name = qualified.split(".")
        parameters = inspect.signature(getattr(getattr(keras, module), name)).parameters
        required = [n for n, p in parameters.items() if p.default is p.empty and p.kind <= 1]
        assert required == [], (qualified, required)
