"""Spec text never becomes code: it is refused, or emitted as an inert literal.

A `.step` file is data. Each test feeds the compiler something that could
reach Python if it were pasted into the generated module -- names such as
`__import__`, `exec`, `os`, `keras` or Python keywords, strings with quotes,
backslashes, newlines, `#` and triple quotes, unicode look-alikes, a hostile
file name -- and requires one of two outcomes:

* refused: no module, and an error pointing at the offending text; or
* inert: the module parses (`ast.parse`), the text appears only as an
  `ast.Constant` value, the module imports nothing but Keras and TensorFlow,
  calls no exec/eval/__import__/os function, and is pure ASCII.


"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
from stepc.cli import main
from stepc.diagnostics import Diagnostic, Severity
from stepc.pipeline import analyze

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").glob("*.step"))
# Keras, and the framework each backend's steps are written in (imported only on it).
ALLOWED_IMPORTS = {"keras", "keras.ops", "tensorflow", "jax", "torch"}
DANGEROUS_BUILTINS = {
    "exec", "eval", "compile", "__import__", "open", "getattr", "setattr", "delattr",
    "globals", "locals", "vars", "breakpoint", "input",
}  # fmt: skip
DANGEROUS_METHODS = {"system", "popen", "spawnl", "import_module", "run", "check_output"}

# ---------------------------------------------------------------- helpers


def compile_text(text: str, path: str = "t.step") -> tuple[str | None, list[Diagnostic]]:
    module, diagnostics = analyze(text, path)
    return module, [d for d in diagnostics if d.severity is Severity.ERROR]


def refused_at(text: str, line: int, column: int) -> list[Diagnostic]:
    """Assert `text` does not compile and an error starts at (line, column)."""
    module, errors = compile_text(text)
    assert module is None
    assert (line, column) in {(e.span.line, e.span.column) for e in errors}, [
        (e.message, e.span) for e in errors
    ]
    return errors


def imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def dangerous_calls(tree: ast.AST) -> list[str]:
    """Calls of builtins that run or reach code, and of os/subprocess-style functions.

    One `getattr` is allowed: delegation inside a helper's `__getattr__` (JAX's
    `_StepOptimizers` forwards to Keras's optimizer), whose name comes from Python's
    attribute lookup on the generated object, never from spec text."""
    found = []
    delegating = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if id(node) in delegating and isinstance(func, ast.Name) and func.id == "getattr":
            continue
        if isinstance(func, ast.Name) and func.id in DANGEROUS_BUILTINS:
            found.append(func.id)
        elif isinstance(func, ast.Attribute) and func.attr in DANGEROUS_METHODS:
            found.append(ast.unparse(func))
    return found


def assert_safe_module(module: str) -> ast.Module:
    """The generated module is valid, ASCII, imports only Keras and calls nothing risky."""
    assert module.isascii(), [line for line in module.splitlines() if not line.isascii()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. an invalid escape sequence in a docstring
        tree = ast.parse(module)
    assert imports(tree) <= ALLOWED_IMPORTS
    assert dangerous_calls(tree) == []
    return tree


def assert_inert(text: str, payload: str) -> None:
    """`text` compiles and `payload` reaches the module only as a string constant."""
    module, errors = compile_text(text)
    assert errors == [], [e.message for e in errors]
    tree = assert_safe_module(module)
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert payload in constants


# A Functional model whose metric is named by `{name}` and built from `{args}`.
METRIC_SPEC = """\
model M(Functional):
    metric {name} = Mean({args})
    train(x, y):
        y_pred = self(x)
        loss = compiled_loss(y, y_pred)
        minimize loss over self
        update {name}(loss)
"""

# Where a user-chosen name is declared: (template with NAME, line, column of NAME).
DECLARATIONS = {
    "model": (
        "model NAME(Functional):\n    train(x, y):\n        l = compiled_loss(y, self(x))\n",
        1,
        7,
    ),
    "init": (
        "model G:\n    init(NAME: Model)\n    predict(x):\n        p = NAME(x)\n        return p\n",
        2,
        10,
    ),
    "compile": (
        "model M(Functional):\n    compile(NAME: Optimizer)\n    train(x, y):\n"
        "        l = compiled_loss(y, self(x))\n        minimize l over self using NAME\n",
        2,
        13,
    ),
    "metric": (METRIC_SPEC.replace("{name}", "NAME").replace("{args}", ""), 2, 12),
    "loss": (
        "model M(Functional):\n    loss NAME = Huber()\n    train(x, y):\n"
        "        l = NAME(y, self(x))\n        minimize l over self\n        return l=l\n",
        2,
        10,
    ),
    "data": (
        "model M(Functional):\n    predict(NAME):\n        p = self(NAME)\n        return p\n",
        2,
        13,
    ),
    "local": (
        "model M(Functional):\n    predict(x):\n        NAME = self(x)\n        return NAME\n",
        3,
        9,
    ),
    "unpacked": (
        "model M(Functional):\n    predict(x):\n        a, NAME = self(x)\n        return a\n",
        3,
        12,
    ),
}

# Names Python or the generated module rely on: always refused.
HOSTILE_NAMES = [
    "__import__", "exec", "eval", "keras", "ops", "tf", "np", "self", "data", "cls",
    "config", "kwargs", "print", "open", "getattr", "globals", "super", "object",
    "__class__", "__builtins__",
]  # fmt: skip
# Names the generated module never uses: refused, or harmless plain identifiers.
HARMLESS_NAMES = ["os", "sys", "subprocess", "seed_generator", "tape", "grads", "variables"]

PYTHON_KEYWORDS = [
    "import", "lambda", "class", "def", "yield", "await", "async", "global", "nonlocal",
    "del", "pass", "raise", "try", "with", "assert", "not", "and", "or", "is", "in",
    "match", "case", "type", "None", "True", "False",
]  # fmt: skip
CONSTANTS = ("None", "True", "False")


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("place", DECLARATIONS)
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_declared_names_are_refused(place: str, name: str) -> None:
    template, line, column = DECLARATIONS[place]
    refused_at(template.replace("NAME", name), line, column)


@pytest.mark.parametrize("place", DECLARATIONS)
@pytest.mark.parametrize("name", HARMLESS_NAMES)
def test_names_unused_by_the_module_are_refused_or_plain(place: str, name: str) -> None:
    template, _, _ = DECLARATIONS[place]
    module, errors = compile_text(template.replace("NAME", name))
    if module is not None:
        assert name not in imports(assert_safe_module(module))
    else:
        assert errors


@pytest.mark.parametrize(
    ("place", "name"),
    [
        (place, name)
        for place in DECLARATIONS
        for name in PYTHON_KEYWORDS
        if not (place == "model" and name in CONSTANTS)  # see test_constants_as_model_names
    ],
)
def test_python_keywords_as_names_are_refused(place: str, name: str) -> None:
    template, _, _ = DECLARATIONS[place]
    module, errors = compile_text(template.replace("NAME", name))
    assert module is None
    assert errors


@pytest.mark.parametrize("name", CONSTANTS)
def test_constants_as_model_names(name: str) -> None:
    template, line, column = DECLARATIONS["model"]
    refused_at(template.replace("NAME", name), line, column)


HELPER_SHADOWING = {
    "local": "model M(Functional):\n    train(x, y):\n        NAME = self(x)\n"
    "        loss = mean(NAME - y)\n        minimize loss over self\n        return loss=loss\n",
    "model": "model NAME(Functional):\n    train(x, y):\n        loss = mean(self(x) - y)\n"
    "        minimize loss over self\n        return loss=loss\n",
}


@pytest.mark.parametrize("place", HELPER_SHADOWING)
@pytest.mark.parametrize("name", ["_scale_for_distribution", "_unscale_for_distribution"])
def test_names_of_generated_helpers_are_refused(place: str, name: str) -> None:
    text = HELPER_SHADOWING[place].replace("NAME", name)
    line, column = (3, 9) if place == "local" else (1, 7)
    refused_at(text, line, column)


@pytest.mark.parametrize("place", ["init", "metric", "loss", "compile"])
@pytest.mark.parametrize(
    "name", ["train_step", "compute_loss", "metrics", "name", "loss", "fit", "built", "_private"]
)
def test_names_of_keras_model_attributes_are_refused(place: str, name: str) -> None:
    template, line, column = DECLARATIONS[place]
    errors = refused_at(template.replace("NAME", name), line, column)
    assert any(f"`{name}`" in e.message for e in errors)


@pytest.mark.parametrize(
    "call", ["__import__('os')", "exec(x)", "eval(x)", "os(x)", "getattr(x, 'y')", "keras(x)"]
)
def test_calls_of_python_functions_are_refused(call: str) -> None:
    text = f"model M(Functional):\n    predict(x):\n        p = {call}\n        return p\n"
    refused_at(text, 3, 13)


def test_there_is_no_attribute_access() -> None:
    text = "model M(Functional):\n    predict(x):\n        p = x.__class__\n        return p\n"
    refused_at(text, 3, 14)


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("model \u041c(Functional):", 7, "unexpected character '\u041c'"),  # Cyrillic Em
        ("model M\u200b(Functional):", 8, "unexpected character '\\u200b'"),  # zero-width space
        ("model \uff2d(Functional):", 7, "unexpected character '\uff2d'"),  # fullwidth M
        ("model M(Functi\u043enal):", 15, "unexpected character '\u043e'"),  # Cyrillic o
        ("m\u043edel M(Functional):", 1, "unexpected name `m`"),  # Cyrillic o in `model`
    ],
)
def test_unicode_look_alikes_in_names_are_rejected_by_the_lexer(
    text: str, column: int, message: str
) -> None:
    spec = text + "\n    predict(x):\n        p = self(x)\n        return p\n"
    errors = refused_at(spec, 1, column)
    assert errors[0].message == message


@pytest.mark.parametrize("local", ["y_pr\u0435d", "\u0430", "l\u2028oss"])
def test_unicode_look_alikes_in_a_step_are_rejected(local: str) -> None:
    text = f"model M(Functional):\n    predict(x):\n        {local} = self(x)\n        return p\n"
    module, errors = compile_text(text)
    assert module is None
    assert errors[0].span.line == 3
    assert errors[0].message.startswith("unexpected character")


def test_return_keys_are_emitted_as_string_literals() -> None:
    text = METRIC_SPEC.format(name="t", args="") + "        return lambda=loss, os=loss\n"
    text = text.replace("        update t(loss)\n", "")
    text = text.replace("    metric t = Mean()\n", "")
    assert_inert(text, "lambda")
    assert_inert(text, "os")


# ---------------------------------------------------------------- strings

PAYLOADS = {
    "closing-quote": ('"\\"); import os; (\\""', '"); import os; ("'),
    "single-quote": ("'x\\'); import os; (\\''", "x'); import os; ('"),
    "newline": ('"a\\nimport os\\n"', "a\nimport os\n"),
    "tab": ('"\\tx"', "\tx"),
    "hash": ('"# not a comment"', "# not a comment"),
    "triple-double": ('"\\"\\"\\"; import os; \\"\\"\\""', '"""; import os; """'),
    "triple-single": ("\"'''; import os; '''\"", "'''; import os; '''"),
    "backslash": ("'\\\\\\\\'", "\\\\"),
    "backslash-end": ("'x\\\\'", "x\\"),
    "braces": ("\"{__import__('os')}\"", "{__import__('os')}"),
    "jinja": ('"{{ module }}{% raw %}"', "{{ module }}{% raw %}"),
    "latin": ('"caf\u00e9"', "caf\u00e9"),
    "cyrillic": ('"\u0438\u043c\u043f\u043e\u0440\u0442"', "\u0438\u043c\u043f\u043e\u0440\u0442"),
    "bidi": ('"\u202eos tropmi"', "\u202eos tropmi"),
    "line-separator": ('"a\u2028import os"', "a\u2028import os"),
    "nel": ('"a\u0085b"', "a\u0085b"),
}


@pytest.mark.parametrize("payload", PAYLOADS, ids=list(PAYLOADS))
def test_strings_in_constructor_arguments_stay_literals(payload: str) -> None:
    literal, value = PAYLOADS[payload]
    assert_inert(METRIC_SPEC.format(name="tracker", args=f"name={literal}"), value)


@pytest.mark.parametrize("payload", PAYLOADS, ids=list(PAYLOADS))
def test_strings_in_a_step_stay_literals(payload: str) -> None:
    literal, value = PAYLOADS[payload]
    text = METRIC_SPEC.format(name="tracker", args="")
    # Through a name: a literal non-dtype string given to `cast` is refused (F10).
    text += f"        d = {literal}\n"
    text += "        return loss=loss, cast=cast(x, d)\n"
    assert_inert(text, value)


@pytest.mark.parametrize("where", ["constructor", "step"])
def test_characters_beyond_the_bmp_keep_their_value(where: str) -> None:
    literal, value = '"\U0001f600"', "\U0001f600"
    text = METRIC_SPEC.format(
        name="tracker", args=f"name={literal}" if where == "constructor" else ""
    )
    if where == "step":
        # Through a name: a literal non-dtype string given to `cast` is refused (F10).
        text += f"        d = {literal}\n        return loss=loss, cast=cast(x, d)\n"
    assert_inert(text, value)


@pytest.mark.parametrize(
    "literal",
    ['"unterminated', '"raw\nnewline"', '"bad \\x41 escape"', '"bad \\u0041"', '"\\N{DASH}"'],
)
def test_strings_outside_the_grammar_are_refused(literal: str) -> None:
    module, errors = compile_text(METRIC_SPEC.format(name="t", args=f"name={literal}"))
    assert module is None
    assert errors[0].span.line == 2


def test_comments_never_reach_the_module() -> None:
    text = METRIC_SPEC.format(name="t", args="")
    text = text.replace("\n", '  # \u202e""" import os \\\n', 3)
    module, errors = compile_text(text)
    assert errors == []
    assert_safe_module(module)
    assert "import os" not in module
    assert "\u202e" not in module


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_specs_give_safe_modules(path: Path) -> None:
    module, errors = compile_text(path.read_text(encoding="utf-8"), path.name)
    assert errors == []
    assert_safe_module(module)


# ---------------------------------------------------------------- known holes


@pytest.mark.parametrize("keyword", ["import", "lambda", "class"])
def test_python_keyword_as_constructor_keyword(keyword: str) -> None:
    text = METRIC_SPEC.format(name="t", args=f"{keyword}=1")
    module, errors = compile_text(text)
    if module is not None:
        ast.parse(module)
    else:
        assert errors[0].span.line == 2


def test_number_with_leading_zeros() -> None:
    text = METRIC_SPEC.format(name="t", args="").replace("self(x)", "self(x) * 007")
    module, errors = compile_text(text)
    if module is not None:
        ast.parse(module)
    else:
        assert errors[0].span.line == 4


HOSTILE_FILE_NAMES = [
    'a"""; import os; """.step',
    "evil\nimport os\n#.step",
    "caf\u00e9.step",
    "a\\.step",
]


@pytest.mark.parametrize("name", ["a b.step", "a'b.step", "dir/x-y.step", "-.step"])
def test_odd_but_harmless_spec_file_names(name: str) -> None:
    module, errors = compile_text(SPECS[0].read_text(encoding="utf-8"), name)
    assert errors == []
    assert_safe_module(module)


@pytest.mark.parametrize("name", HOSTILE_FILE_NAMES)
def test_spec_file_name_never_becomes_code(name: str) -> None:
    module, errors = compile_text(SPECS[0].read_text(encoding="utf-8"), name)
    if module is not None:
        assert_safe_module(module)


def test_cli_with_a_hostile_spec_file_name(tmp_path: Path, capsys) -> None:
    spec = tmp_path / HOSTILE_FILE_NAMES[0]
    spec.write_text(SPECS[0].read_text(encoding="utf-8"), encoding="utf-8")
    code = main(["compile", str(spec), "-o", str(tmp_path / "out")])
    capsys.readouterr()
    if code == 0:
        (written,) = (tmp_path / "out").iterdir()
        assert_safe_module(written.read_text(encoding="utf-8"))
    else:
        assert code == 1
