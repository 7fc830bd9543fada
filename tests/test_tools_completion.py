"""Completion of the language index (`stepc.tools.completion`), on text being typed:
each case is a spec with an unfinished line and the cursor at its end (`|`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stepc.tables.builtins import LOSS_CLASSES, METRIC_CLASSES, OPS, OPTIMIZER_CLASSES
from stepc.tools.index import Completion, index_source

HEAD = """\
model GAN:
    init(discriminator: Model, generator: Model, latent_dim: int)
    compile(d_optimizer: Optimizer, g_optimizer: Optimizer, loss_fn: Loss)
    metric d_loss_tracker = Mean(name="d_loss")
    state seen: int = 0
    train(real_images):
        batch_size = shape(real_images)[0]
        fake = generator(normal((batch_size, latent_dim)))
"""


def complete(text: str) -> list[Completion]:
    """The completions at `|` (removed from the text)."""
    before = text[: text.index("|")]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return index_source(text.replace("|", "", 1)).completions(line, column)


def labels(text: str) -> list[str]:
    return [c.label for c in complete(text)]


def test_a_statement_start_offers_statement_keywords_and_names_in_scope() -> None:
    found = labels(HEAD + "        |\n")
    assert found[:7] == ["minimize", "update", "return", "assign", "apply", "repeat", "for"]
    assert {"real_images", "batch_size", "fake", "generator", "latent_dim", "seen"} <= set(found)
    assert "mean" not in found  # operations come in an expression


def test_a_partly_typed_word_gets_the_same_offers() -> None:
    assert labels(HEAD + "        mini|\n") == labels(HEAD + "        |\n")


def test_an_expression_offers_names_operations_and_constants() -> None:
    found = complete(HEAD + "        loss = mean(fa|\n")
    by_label = {c.label: c for c in found}
    assert {"fake", "batch_size", "discriminator", "True"} <= set(by_label)
    assert by_label["fake"].kind == "value" and "tensor" in by_label["fake"].detail
    assert by_label["concatenate"].kind == "operation"
    assert by_label["concatenate"].detail == OPS["concatenate"].signature()
    assert "keras.ops.concatenate" in by_label["concatenate"].documentation
    assert by_label["latent_dim"].kind == "parameter"
    assert by_label["discriminator"].kind == "model"
    assert by_label["seen"].kind == "state"
    assert "minimize" not in by_label


def test_a_value_is_offered_only_after_its_assignment() -> None:
    text = HEAD + "        x = |\n        later = 1.0\n"
    assert "later" not in labels(text) and "batch_size" in labels(text)


def test_after_update_the_metrics() -> None:
    assert labels(HEAD + "        update |\n") == ["compiled_metrics", "d_loss_tracker", "loss"]
    assert labels(HEAD + "        update d_lo|\n") == labels(HEAD + "        update |\n")


def test_after_using_the_optimizers_and_after_over_the_models() -> None:
    text = HEAD + "        minimize mean(fake) over generator using |\n"
    assert labels(text) == ["d_optimizer", "g_optimizer"]
    over = labels(HEAD + "        minimize mean(fake) over |\n")
    assert set(over) == {"discriminator", "generator"}
    assert "discriminator" in labels(HEAD + "        minimize mean(fake) over generator, |\n")


@pytest.mark.parametrize(
    ("item", "classes"),
    [("metric", METRIC_CLASSES), ("loss", LOSS_CLASSES), ("optimizer", OPTIMIZER_CLASSES)],
)
def test_after_a_declarations_equals_its_keras_classes(item: str, classes) -> None:
    text = HEAD.replace("    state seen", f"    {item} thing = |\n    state seen")
    found = complete(text)
    assert sorted(c.label for c in found) == sorted(classes)
    assert all(c.kind == "class" and c.detail.startswith("keras.") for c in found)


def test_a_metric_class_documents_its_constructor() -> None:
    text = HEAD.replace("    state seen", "    metric thing = Me|\n    state seen")
    mean = next(c for c in complete(text) if c.label == "Mean")
    assert "keras.metrics.Mean(name, dtype)" in mean.documentation


def test_a_model_item_start_offers_item_keywords() -> None:
    found = labels(HEAD.replace("    state seen", "    |\n    state seen"))
    assert {"init", "compile", "metric", "loss", "optimizer", "state", "jit_compile"} <= set(found)
    assert {"train", "test", "predict", "shared"} <= set(found)
    assert "minimize" not in found


def test_after_a_parameters_colon_the_types() -> None:
    text = HEAD.replace("latent_dim: int)", "latent_dim: int, alpha: |)")
    assert {"Model", "int", "float", "Optimizer", "Callable"} <= set(labels(text))
    state = HEAD.replace("state seen: int", "state seen: |")
    assert labels(state) == ["int", "float", "bool"]


def test_the_top_level_offers_model() -> None:
    assert labels("|") == ["model"]
    assert labels(HEAD + "\n|\n") == ["model"]


def test_inside_a_loop_its_variable_is_in_scope_and_not_after() -> None:
    text = HEAD + "        repeat 3 as i:\n            x = |\n        y = 1.0\n"
    assert "i" in labels(text)
    after = HEAD + "        repeat 3 as i:\n            x = fake * i\n        y = |\n"
    assert "i" not in labels(after) and "x" in labels(after)


def test_the_shared_blocks_values_are_in_scope_in_the_train_step() -> None:
    text = (
        "model Pair:\n    init(net: Model)\n    compile(opt: Optimizer)\n"
        "    shared(x, y):\n        err = mean(square(net(x) - y))\n"
        "    train:\n        minimize |\n"
    )
    assert {"err", "x", "y", "net"} <= set(labels(text))


def test_completion_works_when_the_spec_has_another_syntax_error() -> None:
    text = HEAD + "        broken = (\n        update |\n"
    assert "d_loss_tracker" in labels(text)


@pytest.mark.parametrize("name", ["gan", "ddim", "adamatch", "nnclr"])
def test_every_cursor_of_a_shipped_spec_completes_and_hovers(name: str) -> None:
    """No position raises: every line's start, middle and end, and past the end."""
    path = Path(__file__).resolve().parent.parent / "specs" / f"{name}.step"
    text = path.read_text(encoding="utf-8")
    index = index_source(text, path.name)
    for number, line in enumerate(text.split("\n"), start=1):
        for column in sorted({1, len(line) // 2 + 1, len(line) + 1, len(line) + 5}):
            assert isinstance(index.completions(number, column), list)
            hovered = index.hover(number, column)
            assert hovered is None or hovered.strip()
    assert index.completions(len(text.split("\n")) + 3, 1) == [
        Completion("model", "keyword", "a model: `model Name:`")
    ]
