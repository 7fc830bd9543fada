"""Checker tests of what a step reports (issue #12): several compiled losses and
which one Keras's `loss` entry reports, `update loss(...)`, returned compiled
metrics, shared(...) blocks and steps without a data line, and derived test
steps. A few tests read the generated module's text (no TensorFlow): where the
lowering puts Keras's loss tracker update, and which steps it derives.
"""

from __future__ import annotations

import stepc

from tests.support.checker import (
    at,
    check,
    diagnose,
    errors,
    functional,
    submodels,
    the_error,
    warnings,
)

AMBIGUOUS = "`loss` in the logs could be any of this step's compiled losses"
AMBIGUOUS_HINT = (
    "say what Keras's loss tracker reports with `update loss(value)`, e.g. "
    "`update loss(clean + adv)` (without it, it reports a step's one compiled_loss, or "
    "the one loss minimized of several)"
)
TEST_STEP = "model M(Functional):\n    test(x, y):\n"
CLEAN_AND_ADV = (
    "clean = compiled_loss(y, self(x))",
    "adv = compiled_loss(y, self(x + 0.1))",
)


def compiled(text: str) -> str:
    return stepc.compile_source(text, "t.step")


def step_source(module_text: str, step: str = "train_step") -> str:
    """The text of one generated step method (as tests.support.constructs reads it;
    that module imports Keras, which this tier does not)."""
    start = module_text.index(f"    def {step}(")
    end = module_text.find("\n    def ", start + 1)
    return module_text[start : end if end >= 0 else None]


# ---------------------------------------------------------------- several compiled losses


def test_two_compiled_losses_minimized_together_are_accepted():
    assert errors(functional(*CLEAN_AND_ADV, "minimize 0.5 * clean + 0.5 * adv over self")) == []


def test_two_compiled_losses_report_the_minimized_loss_after_the_minimize():
    """The minimized expression gets a local, reported (unscaled, weighted by
    the batch size) after the weights are updated, outside the tape."""
    train = step_source(compiled(functional(*CLEAN_AND_ADV, "minimize clean + adv over self")))
    assert "reported_loss = clean + adv" in train
    update = train.index("self._loss_tracker.update_state(")
    assert train.index("self.optimizer.apply(") < update
    assert "_unscale_for_distribution(reported_loss), sample_weight=_batch_size(x)" in train


def test_two_compiled_losses_without_a_minimize_need_update_loss():
    text = functional(*CLEAN_AND_ADV, "update compiled_metrics(y, self(x))", header=TEST_STEP)
    check(the_error(text), AMBIGUOUS, at(text, 4, "compiled_loss"), AMBIGUOUS_HINT)


def test_two_minimizes_of_compiled_losses_need_update_loss():
    text = functional(*CLEAN_AND_ADV, "minimize clean over self", "minimize adv over self")
    check(the_error(text), AMBIGUOUS, at(text, 4, "compiled_loss"), AMBIGUOUS_HINT)


def test_a_minimize_in_a_repeat_block_does_not_say_which_loss_is_reported():
    text = functional(
        "repeat 2:", *(f"    {s}" for s in CLEAN_AND_ADV), "    minimize clean + adv over self"
    )
    check(the_error(text), AMBIGUOUS, at(text, 5, "compiled_loss"), AMBIGUOUS_HINT)


def test_one_compiled_loss_in_a_repeat_block_is_reported_on_each_pass():
    text = functional(
        "repeat 2:", "    loss = compiled_loss(y, self(x))", "    minimize loss over self"
    )
    assert errors(text) == []
    loop = step_source(compiled(text)).split("for _ in range(2):")[1]
    assert "self._loss_tracker.update_state(" in loop


def test_update_loss_says_which_compiled_loss_is_reported():
    text = functional(*CLEAN_AND_ADV, "update loss(adv)", header=TEST_STEP)
    assert errors(text) == []
    test = step_source(compiled(text), "test_step")
    assert test.count("self._loss_tracker.update_state(") == 1
    assert "_unscale_for_distribution(adv)" in test


# ---------------------------------------------------------------- update loss(...)

DISTILLER = """\
model D:
    init(student: Model, teacher: FrozenModel)
    train(x, y):
        s = student(x)
        total = mean(square(s - y)) + mean(square(s - teacher(x)))
        minimize total over student
        update loss(total)
"""


def test_update_loss_updates_keras_loss_tracker_once():
    """A hand-written mean is not replica-scaled: reported as is, weighted by the
    batch size; Keras's `metrics` (listing its loss tracker) is kept."""
    module = compiled(DISTILLER)
    train = step_source(module)
    assert "self._loss_tracker.update_state(total, sample_weight=_batch_size(x))" in train
    assert "Keras's loss tracker is not listed" not in module


def test_update_loss_twice_is_refused():
    text = submodels("loss = mean(disc(gen(x)))", "update loss(loss)", "update loss(2.0 * loss)")
    check(
        the_error(text),
        "Keras's loss tracker is updated twice in one step",
        at(text, 8, "update"),
        "write one update loss(...), with the value `loss` should report",
    )


def test_update_loss_in_a_repeat_block_is_refused():
    text = submodels("repeat 2:", "    loss = mean(disc(gen(x)))", "    update loss(loss)")
    check(
        the_error(text),
        "update loss(...) in a repeat block updates Keras's loss tracker on every pass",
        at(text, 8, "update"),
        "update it once per step, after the block, with the value `loss` should report",
    )


def test_update_loss_takes_a_value_and_a_weight():
    text = functional("update loss(x, y, x)", header=TEST_STEP)
    check(
        the_error(text),
        "`loss` takes at most 2 positional arguments, got 3",
        at(text, 3, "update"),
        "the signature is loss(values, sample_weight=...)",
    )


def test_update_loss_of_a_model_is_refused():
    text = functional("update loss(self)", header=TEST_STEP)
    check(
        the_error(text),
        "a step cannot report a model",
        at(text, 3, "self"),
        "return numbers or tensors (a tracker by its name reports its result)",
    )


def test_a_metric_named_loss_is_refused_next_to_update_loss():
    text = DISTILLER.replace("    train", '    metric t = Mean(name="loss")\n    train')
    text = text.replace("update loss(total)", "update loss(total)\n        update t(total)")
    check(
        the_error(text),
        'metric `t` is named "loss", as Keras\'s loss tracker is',
        at(text, 3, '"loss"'),
        "this model's step uses update loss(...), whose tracker Keras reports as `loss`: name "
        'the metric otherwise, e.g. `Mean(name="total_loss")`',
    )


def test_a_local_named_loss_does_not_hide_the_tracker():
    """`update loss(...)` names Keras's tracker even when a value is named loss."""
    text = submodels("loss = mean(disc(gen(x)))", "minimize loss over gen using g_opt")
    assert errors(text + "        update loss(loss)\n") == []


# ---------------------------------------------------------------- returns


def test_return_compiled_metrics_with_values_is_accepted():
    text = functional(
        "y_pred = self(x)",
        "loss = compiled_loss(y, y_pred)",
        "minimize loss over self",
        "update compiled_metrics(y, y_pred)",
        'return compiled_metrics["mae"], compiled_metrics["mse"], extra=mean(y_pred)',
    )
    assert errors(text) == []
    returned = step_source(compiled(text)).split("return {")[1]
    assert '"mae": _compiled_metric_result(self, "mae", "t.step:7")' in returned


def test_return_by_entry_of_a_tracker_is_refused():
    text = submodels("loss = mean(disc(gen(x)))", 'return tracker["mean"], loss=loss')
    check(
        the_error(text),
        "only compiled_metrics is returned by entry, not `tracker`",
        at(text, 7, "tracker"),
        "return a tracker by its name (`return tracker`), or key=value",
    )


def test_return_of_an_empty_compiled_metric_name_is_refused():
    text = functional(*CLEAN_AND_ADV, "update loss(adv)", 'return compiled_metrics[""]')
    check(
        the_error(text.replace("    train", "    test")),
        "a compiled metric's name cannot be empty",
        at(text, 6, "compiled_metrics"),
        'name it as compile() reports it, e.g. `compiled_metrics["mae"]`',
    )


def test_a_compiled_metric_returned_twice_is_refused_once():
    text = functional(
        "y_pred = self(x)",
        'return compiled_metrics["mae"], compiled_metrics["mae"]',
        header=TEST_STEP,
    )
    second = text.split("\n")[3].rindex("compiled_metrics")
    check(the_error(text), "`mae` is returned twice", (4, second + 1))


# ---------------------------------------------------------------- shared blocks

SHARED = """\
model M(Functional):
    shared(x, y):
        y_pred = self(x)
        loss = compiled_loss(y, y_pred)
    train:
        minimize loss over self
    test:
        update compiled_metrics(y, y_pred)
"""


def test_a_shared_block_is_run_first_by_train_and_test():
    module = compiled(SHARED)
    for name in ("train_step", "test_step"):
        step = step_source(module, name)
        assert step.index("# t.step:3") < step.index("# t.step:4") < step.index("return")
    train = step_source(module)
    # The shared forward pass is the minimize's recording, as if written in train.
    assert train.index("with tf.GradientTape()") < train.index("y_pred = self(x, training=True)")


def test_a_step_may_repeat_the_shared_data_line():
    assert diagnose(SHARED.replace("    train:", "    train(x, y):")) == []


def test_a_different_data_line_is_refused():
    text = SHARED.replace("    test:", "    test(a, b):")
    check(
        the_error(text),
        "this data line differs from the shared block's, shared(x, y) on line 2",
        at(text, 7, "a, b"),
        "omit it (`test:`) to take the shared block's, or write the same",
    )


def test_a_step_without_a_data_line_needs_a_shared_block():
    text = (
        "model M(Functional):\n    train:\n        minimize compiled_loss(x, self(x)) over self\n"
    )
    check(
        the_error(text),
        "`train:` takes the data line of a shared(...) block, and this model has none",
        (2, 5),
        "write the data line, e.g. `train(x, y):`, or add a `shared(x, y):` block",
    )


def test_a_predict_step_needs_its_data_line():
    text = SHARED + "    predict:\n        y_pred = self(x)\n        return y_pred\n"
    check(
        the_error(text),
        "a predict step needs its data line",
        (9, 5),
        "write it, e.g. `predict(x):` (a shared block runs only in train and test)",
    )


def test_a_shared_block_cannot_update_weights_or_return():
    text = SHARED.replace(
        "        loss = compiled_loss(y, y_pred)\n",
        "        loss = compiled_loss(y, y_pred)\n"
        "        minimize loss over self\n"
        "        return loss=loss\n",
    )
    found = errors(text)
    assert [(d.span.line, d.message, d.hint) for d in found] == [
        (
            5,
            "a shared block cannot minimize: it runs in the test step too",
            "minimize in the train step, after the shared block",
        ),
        (
            6,
            "a shared block cannot return: it runs in the test step too",
            "return in each step: the train and the test step report apart",
        ),
    ]


def test_two_shared_blocks_are_refused():
    text = SHARED + "    shared(x, y):\n        z = self(x)\n"
    check(
        the_error(text),
        "a model has at most one shared(...) block",
        (9, 5),
        "merge the blocks into one",
    )


def test_an_error_in_a_shared_statement_is_reported_once():
    text = SHARED.replace("self(x)", "self(x, trainig=False)", 1)
    assert [d.span.line for d in errors(text)] == [3]


def test_a_shared_value_one_step_uses_is_not_unused():
    text = SHARED.replace("        loss = ", "        extra = mean(y_pred)\n        loss = ")
    text = text.replace("minimize loss over self", "minimize loss + extra over self")
    assert warnings(text) == []
    unused = warnings(text.replace("loss + extra", "loss"))
    assert [(d.span.line, d.message) for d in unused] == [(4, "`extra` is computed but never used")]


def test_shared_is_a_name_inside_a_step():
    text = functional("shared = compiled_loss(y, self(x))", "minimize shared over self")
    assert errors(text) == []


# ---------------------------------------------------------------- derived test steps


def test_a_model_of_sub_models_with_the_compiled_loss_gets_a_derived_test_step():
    text = submodels(
        "loss = compiled_loss(x, gen(x))",
        "minimize loss over gen using g_opt",
        "update compiled_metrics(x, gen(x))",
    ).replace("    metric tracker = Mean()\n", "")
    test = step_source(compiled(text), "test_step")
    assert "without its weight updates" in test
    assert "self._loss_tracker.update_state(" in test
    assert ".apply(" not in test


def test_a_derived_test_step_reports_the_minimized_loss_of_several():
    text = submodels(
        "clean = compiled_loss(x, gen(x))",
        "adv = compiled_loss(x, gen(2.0 * x))",
        "minimize clean + adv over gen using g_opt",
    ).replace("    metric tracker = Mean()\n", "")
    assert errors(text) == []
    test = step_source(compiled(text), "test_step")
    assert "reported_loss = clean + adv" in test
    assert "_unscale_for_distribution(reported_loss)" in test


def test_a_functional_model_with_the_compiled_loss_keeps_keras_test_step():
    module = compiled(functional())
    assert "def test_step" not in module


def test_a_bad_shared_header_is_recovered_as_a_shared_block():
    """One error: the block is still a shared block (its statements checked, the
    steps still take its data line), not a second train step."""
    text = SHARED.replace("shared(x, y):", "shared(x y):")
    check(
        the_error(text),
        "unexpected name `y`",
        at(text, 2, "y)"),
        "expected one of: `)`, `,`, `?`, the end of the line",
    )


def test_several_compiled_losses_after_a_syntax_error_are_not_reported():
    """The line that failed to parse may have been the `update loss(...)`."""
    text = functional(*CLEAN_AND_ADV, "update loss(adv", "update loss(adv)", header=TEST_STEP)
    assert [d.message for d in errors(text)] == ["`(` is never closed"]


def test_a_derived_test_step_runs_the_shared_block():
    """Without a test block, the derived test step is the train step as it runs:
    the shared statements first, in inference mode."""
    text = "model W:\n    init(net: Model)\n" + SHARED.split("\n", 1)[1].split("    test:")[0]
    text = text.replace("self(x)", "net(x)").replace("over self", "over net")
    test = step_source(compiled(text), "test_step")
    assert "# t.step:4\n        y_pred = self.net(x, training=False)" in test
    assert "self._loss_tracker.update_state(" in test
