"""Checker tests of batches of any structure (no TensorFlow): data lines of more than
three parts, parts used as tuples or dicts, what the plan decides for each, and the
errors of uses that disagree.
"""

from __future__ import annotations

import pytest
from stepc.check.models import check as check_spec
from stepc.diagnostics import has_errors
from stepc.lower.module import lower
from stepc.parse.parser import parse
from stepc.pipeline import analyze

from tests.support.checker import at, check, errors, functional, the_error, warnings


def step(data: str, *lines: str) -> str:
    """A Functional model with a tracker; `train(data)` on line 3, its body from line 4,
    reporting the `loss` it computes."""
    header = f'model M(Functional):\n    metric t = Mean(name="t")\n    train({data}):\n'
    return functional(*lines, "update t(loss)", header=header)


FOUR_PARTS = "x, noise, scale, y"
FOUR_BODY = (
    "loss = mean(square(self(x + scale * noise) - y))",
    "minimize loss over self",
)
ZIPPED = "labeled, unlabeled"
DICT = "batch"


def plan_of(text: str):
    """The train step's plan (the spec must check without errors)."""
    spec, diagnostics = parse(text, "t.step")
    checked, found = check_spec(spec)
    assert not has_errors([*diagnostics, *found]), found
    module, _ = lower(checked, text)
    return module.models[0].steps[0]


def test_four_parts_are_a_tuple_by_position() -> None:
    text = step(FOUR_PARTS, *FOUR_BODY)
    assert errors(text) == []
    data = plan_of(text).data
    assert data.positional == ("x", "noise", "scale", "y")
    assert data.roles == ("x", None, None)  # the batch size: the first part's first tensor
    assert data.required == ()


def test_three_parts_keep_keras_convention() -> None:
    text = step("x, y, w?", "loss = mean(square(self(x) - y))", "minimize loss over self")
    data = plan_of(text).data
    assert data.positional == ()
    assert data.roles == ("x", "y", "w")


def test_an_optional_part_in_a_batch_of_four_is_refused() -> None:
    text = step("x, noise, y, w?", "loss = mean(square(self(x + noise) - y))", FOUR_BODY[1])
    check(
        the_error(text),
        "a batch of 4 parts has no optional part",
        at(text, 3, "w?"),
        "`?` is Keras's x, y, sample_weight convention, for up to three parts; a batch of "
        "more than three is a tuple of exactly 4, by position: remove the `?`",
    )


def test_predict_still_takes_one_part() -> None:
    text = "model M(Functional):\n    predict(x, y):\n        p = self(x)\n        return p\n"
    check(
        the_error(text),
        "a predict step's data has at most 1 part(s)",
        (2, 16),
        "the parts are x, then y, then sample_weight",
    )


def test_unpacking_a_zipped_part() -> None:
    text = step(
        ZIPPED,
        "images, labels = labeled",
        "loss = mean(square(self(images) - labels)) + mean(square(self(unlabeled)))",
        "minimize loss over self",
    )
    assert errors(text) == []
    (structure,) = plan_of(text).data.structures
    assert (structure.part, structure.names, structure.keys) == (
        "labeled",
        ("images", "labels"),
        (),
    )
    assert structure.where == "the first part of the batch"
    assert structure.expected == "a tuple of 2 (images, labels)"
    assert structure.written == "images, labels = labeled"
    assert structure.span.line == 4


def test_indexing_an_unpacked_part_by_position() -> None:
    text = step(
        ZIPPED,
        "images, labels = labeled",
        "loss = mean(square(self(labeled[0]) - labeled[-1])) + mean(labels) + mean(images)",
        "minimize loss over self",
    )
    assert errors(text) == []


def test_a_part_indexed_by_position_alone_stays_a_tensor() -> None:
    """`x[0]` is also a tensor's first row: no structure is planned or checked."""
    text = step(
        ZIPPED,
        "loss = mean(square(self(labeled[0]) - labeled[1])) + mean(unlabeled)",
        "minimize loss over self",
    )
    assert errors(text) == []
    assert plan_of(text).data.structures == ()


def test_a_dict_part_read_by_key() -> None:
    text = step(
        DICT,
        'source = batch["source"]',
        'loss = mean(square(self(source) - batch["target"]))',
        "minimize loss over self",
    )
    assert errors(text) == []
    (structure,) = plan_of(text).data.structures
    assert structure.keys == ("source", "target")
    assert structure.where == "the batch"
    assert structure.expected == "a dict with keys 'source', 'target'"
    assert structure.written == 'batch["source"]'


def test_a_reassigned_part_is_not_a_structure_after() -> None:
    """Uses after the part's name is assigned again read the new value."""
    text = step(
        DICT,
        'batch = batch["source"]',
        "loss = mean(square(self(batch) - batch[0]))",
        "minimize loss over self",
    )
    assert errors(text) == []
    (structure,) = plan_of(text).data.structures
    assert structure.keys == ("source",)


def test_a_structure_given_to_a_model_and_a_loss_whole() -> None:
    """Keras's models and compiled loss take tuples and dicts."""
    text = step(
        DICT,
        'y_pred = self(batch["x"])',
        "loss = compiled_loss(batch, self(batch))",
        "minimize loss over self",
    )
    assert errors(text) == []


def test_unpacked_into_another_count() -> None:
    text = step(
        ZIPPED,
        "a, b = labeled",
        "c, d, e = labeled",
        "loss = mean(self(a) + b + c + d + e + unlabeled)",
        "minimize loss over self",
    )
    check(
        the_error(text),
        "3 names, but `labeled` is a tuple of 2 (a, b)",
        at(text, 5, "c, d"),
        "line 4 unpacks it into 2: unpack it into as many names everywhere",
    )


def test_a_tuple_part_read_by_key() -> None:
    text = step(
        ZIPPED,
        "a, b = labeled",
        'c = labeled["k"]',
        "loss = mean(self(a) + b + c + unlabeled)",
        "minimize loss over self",
    )
    check(
        the_error(text),
        "`labeled` is a tuple of 2 (a, b): it has no keys",
        at(text, 5, '"k"'),
        "line 4 unpacks it; take its elements by position (`labeled[0]`) or by the names "
        "it is unpacked into",
    )


def test_an_index_past_the_end_of_a_tuple_part() -> None:
    text = step(
        ZIPPED,
        "a, b = labeled",
        "loss = mean(self(a) + b + labeled[2] + unlabeled)",
        "minimize loss over self",
    )
    check(
        the_error(text),
        "index 2 is past the end of `labeled`, a tuple of 2 (a, b)",
        at(text, 5, "2]"),
        "its indices are 0 to 1 (line 4 unpacks it)",
    )


@pytest.mark.parametrize("index", ["labeled[1:]", "labeled[:, 0]"])
def test_a_tuple_part_sliced(index: str) -> None:
    text = step(
        ZIPPED,
        "a, b = labeled",
        f"loss = mean(self(a) + b + {index} + unlabeled)",
        "minimize loss over self",
    )
    diag = the_error(text)
    assert diag.message == "`labeled` is a tuple of 2 (a, b): take one element at a time"


def test_a_dict_part_indexed_by_position() -> None:
    text = step(
        DICT, 'a = batch["a"]', "loss = mean(self(a) + batch[0])", "minimize loss over self"
    )
    check(
        the_error(text),
        "`batch` is a dict with keys 'a': read it by key",
        at(text, 5, "0]"),
        'line 4 reads it by key: `batch["a"]`',
    )


def test_a_dict_part_unpacked() -> None:
    text = step(
        DICT,
        'a = batch["a"]',
        "b, c = batch",
        "loss = mean(self(a) + b + c)",
        "minimize loss over self",
    )
    check(
        the_error(text),
        "`batch` is a dict with keys 'a' (line 4 reads it by key): a dict is not unpacked",
        at(text, 5, "b, c"),
        'read each value by its key: `batch["a"]`',
    )


def test_a_tensor_operation_of_a_whole_structure() -> None:
    text = step(
        DICT, 'a = batch["a"]', "loss = mean(self(a)) + mean(batch)", "minimize loss over self"
    )
    check(
        the_error(text),
        "`mean` cannot take `batch`, a dict with keys 'a'",
        at(text, 5, "batch)"),
        'line 4 uses it as one; read its values by key (`batch["a"]`)',
    )


def test_arithmetic_on_a_structure() -> None:
    text = step(
        "labeled", "a, b = labeled", "loss = mean(self(a) + b) + labeled", "minimize loss over self"
    )
    diag = the_error(text)
    assert diag.message == "arithmetic on a tuple or dict of tensors"
    assert (diag.span.line, diag.span.column) == at(text, 5, "labeled")


def test_a_gradient_with_respect_to_a_structure_is_refused() -> None:
    text = step(
        "labeled",
        "a, b = labeled",
        "loss = mean(self(a) - b)",
        "g = gradient(loss, labeled)",
        "minimize loss + mean(g) over self",
    )
    assert errors(text), "a gradient with respect to a tuple must be refused"


def test_an_optional_part_is_never_a_structure() -> None:
    text = step(
        "x, y, w?", "a, b = w", "loss = mean(square(self(x) - y))", "minimize loss over self"
    )
    diag = the_error(text)
    assert diag.message == "only a model's outputs or a tuple can be unpacked into several names"


def test_unpacked_names_unused_are_warned() -> None:
    text = step(
        ZIPPED,
        "images, labels = labeled",
        "loss = mean(square(self(images))) + mean(unlabeled)",
        "minimize loss over self",
    )
    assert [d.message for d in warnings(text)] == ["`labels` is computed but never used"]


def test_structures_compile_to_their_checks() -> None:
    """The generated step checks each structure, naming the spec line of its use."""
    text = step(
        ZIPPED,
        "images, labels = labeled",
        'loss = mean(square(self(images) - labels)) + mean(square(self(unlabeled["u"])))',
        "minimize loss over self",
    )
    module, diagnostics = analyze(text, "t.step")
    assert module is not None, diagnostics
    code = " ".join(module.split()).replace('" "', "")  # lines and literals joined
    assert "_expect_tuple( labeled, 2, " in code
    assert "t.step:4: `images, labels = labeled` expects the first part of the batch" in code
    assert '_expect_dict( unlabeled, ("u",), ' in code


def test_a_structure_given_another_name() -> None:
    text = step(
        DICT,
        'a = batch["a"]',
        "copy = batch",
        "loss = mean(self(a)) + mean(self(copy))",
        "minimize loss over self",
    )
    check(
        the_error(text),
        "`batch`, a dict with keys 'a', cannot be given another name",
        at(text, 5, "batch"),
        "unpack it, or read its parts where they are used",
    )
