"""The `metric` and `loss` declarations whose model would fail when traced: diagnostics.

A loss object's `name` becomes a TensorFlow name scope when it is called
(F8 in the fuzz findings): a name TensorFlow refuses as a scope failed only
at trace time. The style of `tests/test_checker.py`, with the helpers of `tests/support/checker.py`.
"""

from __future__ import annotations

import pytest

from tests.support.checker import at, check, errors, functional


def _with_loss(decl: str) -> str:
    text = functional("loss = l(y, self(x))", "minimize loss over self", "return k=loss")
    return text.replace("    train", f"    loss l = {decl}\n    train")


@pytest.mark.parametrize("name", ["tab\\tl", "l's", "a b", "café", "l\\n", "-l", "_l", "a/b"])
def test_loss_name_tensorflow_refuses_as_a_scope(name: str) -> None:
    text = _with_loss(f'Huber(name="{name}")')
    check(
        errors(text)[0],
        "a loss's name must be a valid TensorFlow name scope",
        at(text, 2, '"'),
        "Keras calls the loss under a scope of its name: use letters, digits, `_`, `.` and `-`, "
        'starting with a letter, a digit or `.` (e.g. name="huber_loss")',
    )
    assert len(errors(text)) == 1


def test_loss_name_given_by_position() -> None:
    text = _with_loss('Huber(1.0, "sum_over_batch_size", "a b")')
    found = [d.message for d in errors(text)]
    assert "a loss's name must be a valid TensorFlow name scope" in found


@pytest.mark.parametrize("name", ["huber", "my.loss-2", "", "0l"])
def test_loss_names_tensorflow_accepts(name: str) -> None:
    assert errors(_with_loss(f'Huber(name="{name}")')) == []


def test_metric_names_are_not_scopes() -> None:
    """Metric names with spaces work: Keras does not open a scope of them."""
    text = functional().replace("    train", '    metric t = Mean(name="my loss")\n    train')
    text += "        update t(loss)\n"
    assert errors(text) == []
