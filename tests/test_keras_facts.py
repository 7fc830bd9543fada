"""The compiler's Keras facts, checked against the pinned Keras.

The compiler never imports Keras: its operation table (`stepc.builtins.OPS`)
and the names Keras keeps on a model (`stepc.keras_names`) are data. These
tests import Keras and fail when the data and the installed Keras disagree:
an operation's parameter names and order, the positional arity a spec may
use, and every public attribute of a built, compiled, fitted, evaluated and
predicted `keras.Model` subclass and Functional model.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from stepc.builtins import (
    DTYPES,
    LABELS_UPDATE_PARAMS,
    LOSS_CALL_PARAMS,
    LOSS_CLASSES,
    METRIC_CLASSES,
    OP_ALIASES,
    OPS,
    VALUES_UPDATE_PARAMS,
    MetricArgs,
    Op,
    default_metric_name,
)
from stepc.keras_names import (
    FUNCTIONAL_ATTRIBUTES,
    KERAS_CONSTRUCTORS,
    KERAS_FUNCTIONS,
    KERAS_OPERATIONS,
    SUBCLASS_ATTRIBUTES,
)

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "keras_names.py"

# Table entries whose target is not a Keras function (stepc's own, or TF's).
_NOT_KERAS = {"gradient", "regularization_loss", "global_norm"}
_MODULES = {"ops.": "keras.ops", "keras.random.": "keras.random", "keras.losses.": "keras.losses"}


def _keras_function(op: Op):
    for prefix, module in _MODULES.items():
        if op.target.startswith(prefix):
            namespace = {"keras.ops": keras.ops, "keras.random": keras.random}
            namespace["keras.losses"] = keras.losses
            return getattr(namespace[module], op.target[len(prefix) :], None)
    return None


KERAS_OPS = [op for op in OPS.values() if op.name not in _NOT_KERAS]


@pytest.mark.parametrize("op", KERAS_OPS, ids=[op.name for op in KERAS_OPS])
def test_operation_exists_with_the_tables_parameter_names(op: Op) -> None:
    function = _keras_function(op)
    assert function is not None, f"{op.target} is not in the installed Keras"
    parameters = inspect.signature(function).parameters
    names = list(parameters)
    positional = [
        n for n, p in parameters.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    # The table's positional parameters are Keras's first ones, in that order.
    assert list(op.params) == positional[: len(op.params)], (op.params, names)
    for keyword in op.keywords:
        assert keyword in names, f"{op.target} has no parameter {keyword!r}: {names}"
    required = [
        n for n, p in parameters.items() if p.default is p.empty and p.kind != p.VAR_KEYWORD
    ]
    # A call the table accepts gives every parameter Keras requires.
    assert set(required) <= set(op.params[: op.required]), (required, op.params)


def test_aliases_name_operations() -> None:
    """A meaning-alike name points at a stepc operation or a Keras function."""
    for alias, meant in OP_ALIASES.items():
        assert meant in OPS or meant in KERAS_OPERATIONS, (alias, meant)
        assert alias not in OPS


def test_table_targets_are_the_non_keras_entries_only() -> None:
    """Every entry is either checked above or knowingly stepc's own."""
    assert {op.name for op in OPS.values() if _keras_function(op) is None} == _NOT_KERAS


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
    data = {
        "subclass": SUBCLASS_ATTRIBUTES,
        "functional": FUNCTIONAL_ATTRIBUTES,
        "operations": KERAS_FUNCTIONS,
    }
    for base, names in found.items():
        missing = sorted(set(names) - data[base])
        assert not missing, (
            f"Keras ({backend}) has these public {base} names that stepc.keras_names "
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


def test_operation_keywords_the_table_allows_are_keywords_in_keras() -> None:
    """A parameter a spec may name is not positional-only in Keras."""
    for op in KERAS_OPS:
        parameters = inspect.signature(_keras_function(op)).parameters
        for name in op.params[op.by_position :]:
            assert parameters[name].kind is not inspect.Parameter.POSITIONAL_ONLY, (op, name)


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
