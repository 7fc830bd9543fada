"""Regenerate `compiler/tables/keras_names.py` from the installed Keras.

Usage: python scripts/keras_names.py [--print-json]

A spec's declaration becomes `self.<name>` on the generated `keras.Model`
subclass, so no declaration may reuse a name Keras keeps on a model. This
script builds a tiny model of each kind stepc generates -- a `keras.Model`
subclass with its own `call` (a model of sub-models) and a Functional model --
and runs compile, fit, evaluate and predict on each, so the attributes Keras
sets only then (`history`, `stop_evaluating`, ...) are seen too. It records
every public name of `dir()` of the class and of the used instance.

Without arguments it introspects every backend that is importable (each in a
fresh process, as Keras picks its backend once per process) and rewrites
`compiler/tables/keras_names.py` with the union. `--print-json` introspects the
current backend (`KERAS_BACKEND`) only and prints `{"subclass": [...],
"functional": [...], "operations": [...], "constructors": {...},
"signatures": {...}}`; `tests/test_keras_facts.py` runs it that way.

It also writes `compiler/tables/ops_signatures.py`: the signature of every function
of keras.ops, keras.ops.image, keras.random and keras.losses (the parameters
as `inspect.signature` writes them, defaults by `repr`), from which
`stepc.tables.ops_table` builds the operation table; and
`compiler/tables/keras_summaries.py`: the first sentence of the docstring of each
of those functions and of each metric, loss and optimizer class a spec may name,
which the language server's hover shows (`stepc.tools.hover`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "compiler" / "tables" / "keras_names.py"
SIGNATURES_TARGET = ROOT / "compiler" / "tables" / "ops_signatures.py"
SUMMARIES_TARGET = ROOT / "compiler" / "tables" / "keras_summaries.py"
# The modules whose functions a spec may call by their bare names.
SIGNATURE_MODULES = ("keras.ops", "keras.ops.image", "keras.random", "keras.losses")
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
# Set by Keras on paths the tiny models do not take (a subclass whose outputs
# are named, e.g. a dict of outputs); kept so a spec cannot replace them.
ALSO_SUBCLASS = {"output_names"}


def _public(names) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def _exercise(model) -> None:
    """compile, fit, evaluate and predict: Keras sets some attributes only then."""
    import numpy as np

    x = np.zeros((4, 3), "float32")
    y = np.zeros((4, 2), "float32")
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    model.evaluate(x, y, batch_size=2, verbose=0)
    model.predict(x, batch_size=2, verbose=0)


def introspect() -> dict[str, list[str]]:
    import keras

    class Tiny(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._dense = keras.layers.Dense(2)  # private: not one of Keras's names

        def call(self, inputs):
            return self._dense(inputs)

    subclass = Tiny()
    _exercise(subclass)
    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    _exercise(functional)
    found = {
        "subclass": _public(dir(keras.Model)) | _public(dir(subclass)),
        "functional": _public(dir(type(functional))) | _public(dir(functional)),
        "operations": operations(),
    }
    result = {base: sorted(names) for base, names in found.items()}
    found_constructors = constructors()
    return {
        **result,
        "constructors": found_constructors,
        "signatures": signatures(),
        "summaries": summaries(found_constructors),
    }


def signatures() -> dict[str, str]:
    """Each public function's parameters, as `inspect.signature` writes them
    (`x, axis=-1`; `subscripts, *operands, **kwargs`), by its qualified name."""
    import importlib
    import inspect

    found = {}
    for prefix in SIGNATURE_MODULES:
        module = importlib.import_module(prefix)
        for name in sorted(_public(dir(module))):
            function = getattr(module, name)
            if inspect.isfunction(function):
                found[f"{prefix}.{name}"] = str(inspect.signature(function))[1:-1]
    return found


def summaries(classes: dict[str, list[str]]) -> dict[str, str]:
    """The first sentence of each function's and class's docstring, by qualified name
    (`keras.ops.mean`, `keras.metrics.Mean`); "" for one without a docstring."""
    import importlib
    import inspect

    import keras

    found = {}
    for prefix in SIGNATURE_MODULES:
        module = importlib.import_module(prefix)
        for name in sorted(_public(dir(module))):
            if inspect.isfunction(getattr(module, name)):
                found[f"{prefix}.{name}"] = first_sentence(inspect.getdoc(getattr(module, name)))
    for qualified in classes:
        module, _, name = qualified.partition(".")
        found[f"keras.{qualified}"] = first_sentence(
            inspect.getdoc(getattr(getattr(keras, module), name))
        )
    return found


def first_sentence(doc: str | None) -> str:
    """The docstring's first paragraph, on one line, up to the end of its first sentence."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph[: end + 1] if end >= 0 else paragraph


def constructors() -> dict[str, list[str]]:
    """The parameters, in order, of every metric, loss and optimizer class a spec may name."""
    import inspect

    import keras

    sys.path.insert(0, str(ROOT / "compiler"))
    from stepc.tables.builtins import LOSS_CLASSES, METRIC_CLASSES, OPTIMIZER_CLASSES

    found = {}
    classes = (("metrics", METRIC_CLASSES), ("losses", LOSS_CLASSES))
    for module, names in (*classes, ("optimizers", OPTIMIZER_CLASSES)):
        for name in sorted(names):
            parameters = inspect.signature(getattr(getattr(keras, module), name).__init__)
            found[f"{module}.{name}"] = [p for p in parameters.parameters if p != "self"]
    return found


def operations() -> set[str]:
    """The functions of keras.ops and keras.random: what a spec may mean by a
    call stepc does not offer (so it is told so, not offered a look-alike)."""
    import inspect

    import keras

    names = set()
    for prefix, module in (("keras.ops", keras.ops), ("keras.random", keras.random)):
        functions = (n for n in _public(dir(module)) if inspect.isfunction(getattr(module, n)))
        names |= {f"{prefix}.{n}" for n in functions}
    return names


def _run_backend(backend: str) -> dict[str, list[str]]:
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(
        [sys.executable, __file__, "--print-json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def _module_text(found: dict, versions: str) -> str:
    def block(name: str, names: set[str]) -> str:
        lines = "".join(f'        "{n}",\n' for n in sorted(names))
        return f"{name}: frozenset[str] = frozenset(\n    {{\n{lines}    }}\n)\n"

    return (
        '"""What the checker knows of Keras, as generated data: do not edit.\n'
        "\n"
        f"Taken from {versions}.\n"
        "\n"
        "A declared name becomes `self.<name>` on a `keras.Model` subclass; one of these\n"
        "would replace what Keras keeps there (a metric named `history` is overwritten by\n"
        "fit()). Generated by `python scripts/keras_names.py` from `dir()` of a built,\n"
        "compiled, fitted, evaluated and predicted model of each kind, on every backend\n"
        "installed; `tests/test_keras_facts.py` fails when Keras has a name missing here.\n"
        "Names starting with `_` are refused for declarations altogether. Also the\n"
        "functions of keras.ops and keras.random, and the parameters of the metric, loss\n"
        "and optimizer classes.\n"
        '"""\n\n'
        + block("SUBCLASS_ATTRIBUTES", found["subclass"])
        + "\n"
        + block("FUNCTIONAL_ATTRIBUTES", found["functional"] | found["subclass"])
        + "\n# The functions of keras.ops and keras.random (offered unless ops_table.EXCLUDED).\n"
        + block("KERAS_FUNCTIONS", found["operations"])
        + "\n# Each function's module, by its name (keras.ops first).\n"
        + "KERAS_OPERATIONS: dict[str, str] = {\n"
        + '    name.rpartition(".")[2]: name.rpartition(".")[0]\n'
        + "    for name in sorted(KERAS_FUNCTIONS, reverse=True)\n"
        + "}\n"
        + "\n# The parameters of each metric, loss and optimizer class, in order.\n"
        + "KERAS_CONSTRUCTORS: dict[str, tuple[str, ...]] = {\n"
        + "".join(f'    "{k}": {_tuple(v)},\n' for k, v in sorted(found["constructors"].items()))
        + "}\n"
    )


def _signatures_text(found: dict[str, str], versions: str) -> str:
    lines = "".join(f"    {name!r}: {text!r},\n" for name, text in sorted(found.items()))
    return (
        '"""The signatures of the Keras functions a spec may call: generated, do not edit.\n'
        "\n"
        f"Taken from {versions}. Generated by `python scripts/keras_names.py`:\n"
        "each function of keras.ops, keras.ops.image, keras.random and keras.losses by\n"
        "its qualified name, with its parameters as `inspect.signature` writes them\n"
        "(defaults by `repr`). `stepc.tables.ops_table` builds the operation table from them;\n"
        "`tests/test_keras_facts.py` fails when Keras's differ on any backend.\n"
        '"""\n\n'
        "# ruff: noqa: E501 (one function a line, as Keras writes its signature)\n\n"
        "SIGNATURES: dict[str, str] = {\n" + lines + "}\n"
    )


def _summaries_text(found: dict[str, str], versions: str) -> str:
    lines = "".join(f"    {name!r}: {text!r},\n" for name, text in sorted(found.items()))
    return (
        '"""What each Keras function and class a spec may name does, in one sentence:\n'
        "generated, do not edit.\n"
        "\n"
        f"Taken from {versions}. Generated by `python scripts/keras_names.py`: the\n"
        "first sentence of the docstring of each function of keras.ops, keras.ops.image,\n"
        "keras.random and keras.losses, and of each metric, loss and optimizer class, by\n"
        "its qualified name. The language server's hover shows it (`stepc.tools.hover`);\n"
        "`tests/test_keras_facts.py` fails when Keras's docstrings say otherwise.\n"
        '"""\n\n'
        "# ruff: noqa: E501 (one entry a line)\n\n"
        "SUMMARIES: dict[str, str] = {\n" + lines + "}\n"
    )


def _tuple(names: list[str]) -> str:
    return "(" + ", ".join(f'"{n}"' for n in names) + ("," if len(names) == 1 else "") + ")"


def regenerate() -> None:
    import keras

    found: dict[str, set[str]] = {
        "subclass": set(ALSO_SUBCLASS),
        "functional": set(),
        "operations": set(),
    }
    used = []
    for backend, module in BACKENDS.items():
        if find_spec(module) is None:
            print(f"skipping the {backend} backend: {module} is not installed")
            continue
        introspected = _run_backend(backend)
        found["constructors"] = introspected.pop("constructors")  # the same on every backend
        found["signatures"] = introspected.pop("signatures")  # so are these (a test checks)
        found["summaries"] = introspected.pop("summaries")  # and the docstrings
        for base, names in introspected.items():
            found[base] |= set(names)
        used.append(backend)
    versions = f"Keras {keras.__version__}; backends {', '.join(used)}"
    TARGET.write_text(_module_text(found, versions), encoding="utf-8")
    SIGNATURES_TARGET.write_text(_signatures_text(found["signatures"], versions), "utf-8")
    SUMMARIES_TARGET.write_text(_summaries_text(found["summaries"], versions), "utf-8")
    # Laid out as the project's formatter would (long tuples one item a line).
    for target in (TARGET, SIGNATURES_TARGET, SUMMARIES_TARGET):
        subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(target)], check=True)
    print(f"wrote {TARGET.relative_to(ROOT)} ({versions})")


def main(argv: list[str]) -> int:
    if argv == ["--print-json"]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        print(json.dumps(introspect()))
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    regenerate()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
