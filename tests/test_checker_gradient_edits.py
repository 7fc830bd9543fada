"""Checker: gradients the step edits (`g = gradient(loss, m)`, `apply EDIT to m`).

Each test checks one spec of the `submodels` template (sub-models gen and disc,
optimizers g_opt and d_opt; the body starts on line 6): the forms accepted, and
every misuse refused with its message, position and hint.
"""

from __future__ import annotations

from tests.support.checker import at, body, check, errors, functional, submodels, the_error

GEN_GRADS = ("loss = mean(disc(gen(x)))", "grads = gradient(loss, gen)")
TRACKED = "update tracker(loss)"


def test_edits_of_a_models_gradients_are_accepted():
    """Arithmetic with numbers and tensors, elementwise ops, where, their norm."""
    text = submodels(
        *GEN_GRADS,
        "mask = ones_like(x)[0]",
        "masked = -(grads * mask) + 0.1 * grads",
        "clipped = clip(masked, -1.0, 1.0) / (global_norm(grads) + 1e-6)",
        "kept = where(abs(clipped) > 0.5, clipped, 0.0)",
        "apply sign(kept) * 0.01 to gen using g_opt",
        TRACKED,
    )
    assert errors(text) == []


def test_a_tensor_mask_chooses_among_gradients():
    text = submodels(
        *GEN_GRADS, "kept = where(x[0] > 0.0, grads, 0.0)", "apply kept to gen using g_opt", TRACKED
    )
    assert errors(text) == []


def test_a_mask_multiplying_gradients():
    text = submodels(*GEN_GRADS, "masked = grads * (x[0] > 0.0)", TRACKED)
    check(
        errors(text)[0],
        "`*` cannot take a boolean value (a comparison's or `& | ~`'s result)",
        at(text, 8, "x[0] >"),
        'cast it first: `cast(mask, "float32")`, or choose with `where(mask, a, b)`',
    )


def test_gradients_applied_to_another_model():
    text = submodels(*GEN_GRADS, "apply grads to disc using d_opt", TRACKED)
    check(
        the_error(text),
        "these are gradients of `gen`, not of `disc`",
        at(text, 8, "grads"),
        "apply them to `gen`, or take `gradient(loss, disc)` for `disc`",
    )


def test_a_tensor_applied():
    text = submodels(*GEN_GRADS, "apply gen(x) to gen using g_opt", TRACKED)
    check(
        the_error(text),
        "apply takes a model's gradients, not a tensor",
        at(text, 8, "gen(x)"),
        "take them with `grads = gradient(loss, gen)`, edit them, then `apply grads to gen`",
    )


def test_gradients_of_two_models_combined():
    text = submodels(
        *GEN_GRADS, "d_grads = gradient(loss, disc)", "both = grads + d_grads", TRACKED
    )
    check(
        errors(text)[0],
        "gradients of `gen` and of `disc` cannot be combined",
        at(text, 9, "grads + d_grads"),
        "each list follows its own model's variables: edit each apart and apply each to its model",
    )


def test_a_reduction_of_gradients():
    text = submodels(*GEN_GRADS, "total = sum(grads)", TRACKED)
    diagnostic = errors(text)[0]
    check(
        diagnostic,
        "`sum` cannot take a list of gradients",
        at(text, 8, "grads)"),
        diagnostic.hint,
    )
    assert diagnostic.hint.startswith("`sum` would reduce them (one tensor per variable)")
    assert "global_norm(grads)" in diagnostic.hint


def test_a_matrix_product_of_gradients():
    text = submodels(*GEN_GRADS, "big = grads @ x", TRACKED)
    diagnostic = errors(text)[0]
    check(
        diagnostic,
        "`@` does not map over a model's gradients",
        at(text, 8, "grads @"),
        diagnostic.hint,
    )
    assert diagnostic.hint.startswith("edit gradients with arithmetic and elementwise operations")


def test_a_mask_of_gradients_applied():
    text = submodels(*GEN_GRADS, "apply grads > 0.0 to gen using g_opt", TRACKED)
    check(
        the_error(text),
        "apply takes a model's gradients, not a mask of them",
        at(text, 8, "grads >"),
        "choose with the mask: `where(mask, grads, 0.0)`",
    )


def test_gradients_passed_to_a_model():
    text = submodels(*GEN_GRADS, "out = disc(grads)", TRACKED)
    diagnostic = errors(text)[0]
    check(
        diagnostic, "`disc` cannot take a list of gradients", at(text, 8, "grads)"), diagnostic.hint
    )
    assert "elementwise" in diagnostic.hint


def test_gradients_passed_to_a_metric():
    text = submodels(*GEN_GRADS, "update tracker(grads)")
    diagnostic = the_error(text)
    check(
        diagnostic,
        "`tracker` cannot take a list of gradients",
        at(text, 8, "grads)"),
        diagnostic.hint,
    )
    assert "global_norm(grads)" in diagnostic.hint


def test_gradients_returned():
    text = submodels(*GEN_GRADS, TRACKED, "return tracker, g=grads")
    check(
        the_error(text),
        "a step cannot report a list of gradients",
        at(text, 9, "grads"),
        "return numbers or tensors (a tracker by its name reports its result)",
    )


def test_applied_to_a_frozen_model():
    text = submodels(*GEN_GRADS, "apply grads to gen using g_opt", TRACKED).replace(
        "disc: Model", "disc: FrozenModel"
    )
    text = text.replace("apply grads to gen", "apply grads to disc")
    found = [d.message for d in errors(text)]
    assert "`disc` is a FrozenModel: it is never trained" in found


def test_applied_to_a_value():
    text = submodels(*GEN_GRADS, "apply grads to loss using g_opt", TRACKED)
    check(
        the_error(text),
        "`loss` is a value, not a model",
        at(text, 8, "loss using"),
        "the models it can update: gen, disc",
    )


def test_apply_in_a_test_step():
    text = submodels(*GEN_GRADS, "apply grads to gen using g_opt", TRACKED).replace(
        "train(x)", "test(x)"
    )
    check(
        the_error(text),
        "a test step cannot update weights",
        at(text, 8, "apply"),
        "apply belongs in the train step",
    )


def test_apply_needs_an_optimizer_in_a_model_with_its_own_compile():
    text = submodels(*GEN_GRADS, "apply grads to gen", TRACKED)
    check(
        the_error(text),
        "say which optimizer updates these weights",
        at(text, 8, "apply"),
        "this model has its own compile(); add `using <optimizer parameter>`",
    )


def test_apply_with_an_unknown_optimizer():
    text = submodels(*GEN_GRADS, "apply grads to gen using g_optt", TRACKED)
    check(
        the_error(text),
        "`g_optt` is not a declared optimizer",
        at(text, 8, "g_optt"),
        "did you mean `g_opt`?",
    )


def test_apply_in_a_shared_block():
    text = (
        "model S:\n    init(gen: Model)\n    compile(g_opt: Optimizer)\n"
        "    metric tracker = Mean()\n"
        "    shared(x):\n"
        + body(*GEN_GRADS[:1], "grads = gradient(loss, gen)", "apply grads to gen using g_opt")
        + "    train:\n"
        + body(TRACKED)
    ).replace("disc(gen(x))", "gen(x)")
    check(
        the_error(text),
        "a shared block cannot apply: it runs in the test step too",
        at(text, 8, "apply"),
        "apply in the train step, after the shared block",
    )


def test_a_functional_model_applies_edited_gradients_to_itself():
    text = functional(
        "loss = compiled_loss(y, self(x))",
        "grads = gradient(loss, self)",
        "apply clip(grads, -0.1, 0.1) to self",
    )
    assert errors(text) == []
