"""compile() and constructor conventions: defaults, Keras's own compile() arguments,
`Callable` and `Layer` parameters, the optimizers and loss objects a model builds from
its numbers, and sub-model calls with several arguments: what the checker accepts,
each error it reports, and the generated signatures (no TensorFlow here; the runtime
side is tests/test_compile_runtime.py). The style of tests/test_checker.py, with the
helpers of tests/support/checker.py.
"""

from __future__ import annotations

import pytest
import stepc

from tests.support.checker import at, check, errors, functional, submodels, the_error, warnings

# A Functional model whose compile() line is line 2 and whose optimizer items go on line 3.
KERAS_COMPILE = "model M(Functional):\n    compile({params})\n{items}    train(x, y):\n"
KERAS_BODY = (
    "y_pred = self(x)",
    "loss = compiled_loss(y, y_pred)",
    "minimize loss over self",
    "update compiled_metrics(y, y_pred)",
)


def keras_compile(params: str, *lines: str, items: str = "") -> str:
    header = KERAS_COMPILE.format(params=params, items=items)
    return functional(*(lines or KERAS_BODY), header=header)


def with_compile(compile_line: str, *lines: str) -> str:
    """The sub-models template with another compile(...) line (line 3)."""
    text = submodels(*lines)
    return text.replace("    compile(g_opt: Optimizer, d_opt: Optimizer)\n", compile_line + "\n")


# ---------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    "params",
    [
        "alpha: float = 0.1, temperature: float = 3.0",
        "alpha: float = -1e-3, temperature: float = 3",  # an int is a float's default too
        "alpha: float = 0.1, steps: int = -2",
    ],
)
def test_defaults_are_accepted(params: str) -> None:
    text = keras_compile(f"optimizer: Optimizer, loss: Loss, {params}", *KERAS_BODY)
    assert errors(text) == []


def test_the_generated_signatures_have_the_defaults() -> None:
    text = with_compile(
        '    compile(g_opt: Optimizer, d_opt: Optimizer = "adam", alpha: float = 0.1)',
        "loss = alpha * mean(disc(gen(x)))",
        "minimize loss over gen using g_opt",
        "minimize loss over disc using d_opt",
        "update tracker(loss)",
    ).replace("init(gen: Model, disc: Model)", "init(gen: Model, disc: Model, steps: int = 3)")
    module = stepc.compile_source(text, "t.step")
    assert "def __init__(self, gen, disc, steps=3, **kwargs):" in module
    assert 'def compile(self, g_opt, d_opt="adam", alpha=0.1, **kwargs):' in module
    assert '"alpha": self.alpha,' in module  # get_compile_config keeps the value given


def test_a_default_must_be_a_literal() -> None:
    text = keras_compile("optimizer: Optimizer, alpha: float = 2 * 0.5", *KERAS_BODY)
    check(
        the_error(text),
        "the default of `alpha` is not a literal",
        at(text, 2, "2 *"),
        "a default is a literal: a number, a string, True, False or None",
    )


@pytest.mark.parametrize(
    ("param", "needle", "message", "hint"),
    [
        (
            "steps: int = 0.5",
            "0.5",
            "the default of `steps: int` must be a whole number",
            "got a number with a fraction",
        ),
        (
            "alpha: float = None",
            "None",
            "the default of `alpha: float` must be a number",
            "got `None`",
        ),
        (
            'alpha: float = "x"',
            '"x"',
            "the default of `alpha: float` must be a number",
            "got a string",
        ),
        (
            "opt: Optimizer = 1",
            "1",
            'the default of `opt: Optimizer` must be an optimizer\'s name, such as "adam"',
            "got a whole number",
        ),
        (
            'metrics: Metrics = "mae"',
            '"mae"',
            "the default of `metrics: Metrics` must be None",
            "got a string",
        ),
    ],
)
def test_a_default_of_another_type_is_refused(param, needle, message, hint) -> None:
    text = keras_compile(f"optimizer: Optimizer, {param}", *KERAS_BODY)
    check(the_error(text), message, at(text, 2, needle), hint)


def test_a_model_has_no_default() -> None:
    text = submodels().replace("disc: Model", "disc: Model = None")
    check(
        the_error(text),
        "a `Model` parameter has no default",
        at(text, 2, "None"),
        "the caller gives it; remove `= ...`",
    )


def test_a_parameter_without_a_default_after_one_with_a_default() -> None:
    text = with_compile('    compile(g_opt: Optimizer = "adam", d_opt: Optimizer)')
    check(
        the_error(text),
        "parameter `d_opt` has no default but follows `g_opt`, which has one",
        at(text, 3, "d_opt"),
        "Python takes the parameters with defaults last: move it before `g_opt`, "
        "or give it a default",
    )


# ---------------------------------------------------------------- Keras's own arguments


def test_keras_own_arguments_are_accepted_next_to_the_spec_own() -> None:
    params = (
        "optimizer: Optimizer, loss: Loss, metrics: Metrics = None, "
        "loss_weights: LossWeights = None, weighted_metrics: Metrics = None, alpha: float = 0.1"
    )
    body = (*KERAS_BODY[:2], "total = loss * alpha", "minimize total over self", KERAS_BODY[3])
    text = keras_compile(params, *body)
    assert errors(text) == []
    assert [w.message for w in warnings(text)] == []  # reached through compiled_loss/metrics
    module = stepc.compile_source(text, "t.step")
    assert "kwargs.update(" in module and "weighted_metrics=weighted_metrics" in module
    assert "self.loss = loss" not in module  # Keras's compile() keeps it
    assert "**keras_config," in module  # Keras's record holds them (get_compile_config)


def test_using_optimizer_is_keras_own() -> None:
    body = (*KERAS_BODY[:2], "minimize loss over self using optimizer", KERAS_BODY[3])
    assert errors(keras_compile("optimizer: Optimizer, loss: Loss", *body)) == []


def test_a_minimize_without_using_needs_keras_own_optimizer() -> None:
    text = keras_compile("loss: Loss", *KERAS_BODY)
    check(
        the_error(text),
        "say which optimizer updates these weights",
        at(text, 6, "minimize"),
        "this model has its own compile(); add `using <optimizer parameter>`",
    )


@pytest.mark.parametrize(
    ("params", "name", "wanted"),
    [("optimizer: Loss", "optimizer", "Optimizer"), ("metrics: Loss", "metrics", "Metrics")],
)
def test_keras_own_argument_of_another_type(params: str, name: str, wanted: str) -> None:
    text = keras_compile(params, *KERAS_BODY[:2], "minimize loss over self using opt")
    text = text.replace("    compile(", "    compile(opt: Optimizer, ")
    found = [d for d in errors(text) if "Keras's own" in d.message]
    check(
        found[0],
        f"`{name}` is Keras's own compile() argument; its type is `{wanted}`",
        at(text, 2, f"{name}: Loss"),
        f"write `{name}: {wanted}`, or pick another name for a parameter of your own",
    )


def test_keras_only_type_on_another_name() -> None:
    text = keras_compile("optimizer: Optimizer, tracked: Metrics")
    check(
        the_error(text),
        "`Metrics` is the type of Keras's own `metrics` and `weighted_metrics` only",
        at(text, 2, "Metrics"),
        "declare `metrics: Metrics` in compile(...); the step reads it through "
        "compiled_loss(...) and compiled_metrics",
    )


def test_keras_own_argument_declared_twice() -> None:
    text = keras_compile("optimizer: Optimizer, loss: Loss, loss: Loss")
    check(
        the_error(text),
        "compile() parameter `loss` is already defined on line 2",
        (2, text.split("\n")[1].rindex("loss:") + 1),
    )


def test_keras_own_optimizer_is_still_reserved_in_init() -> None:
    text = submodels().replace("disc: Model", "disc: Model, optimizer: Optimizer")
    assert "`optimizer` is already an attribute of every keras.Model" in [
        d.message for d in errors(text)
    ]


# ---------------------------------------------------------------- Callable and Layer


WGAN_LIKE = """\
model W:
    init(critic: Model, generator: Model, augmenter: Layer)
    compile(d_opt: Optimizer, d_loss_fn: Callable, g_loss_fn: Callable)
    metric tracker = Mean()
    train(x):
"""


def wgan_like(*lines: str) -> str:
    return WGAN_LIKE + "".join(f"        {line}\n" for line in lines)


def test_callables_are_called_with_the_spec_arity() -> None:
    text = wgan_like(
        "real_logits = critic(augmenter(x))",
        "fake_logits = critic(generator(x), training=True)",
        "d_loss = d_loss_fn(real_logits, fake_logits)",
        "minimize d_loss over critic using d_opt",  # rank unknown: checked when traced
        "g_loss = g_loss_fn(fake_logits, scale=2.0)",
        "update tracker(d_loss + g_loss)",
    )
    assert errors(text) == []
    module = stepc.compile_source(text, "t.step")
    assert "self.d_loss_fn(real_logits, fake_logits)" in module
    assert "self.augmenter(x, training=True)" in module
    assert "_require_scalar(" in module  # the minimize of a function's result


def test_a_callable_takes_no_model() -> None:
    text = wgan_like("d_loss = d_loss_fn(critic, x)", "update tracker(d_loss)")
    check(the_error(text), "`d_loss_fn` cannot take a model", at(text, 6, "critic"))


def test_a_callable_is_no_value() -> None:
    text = wgan_like("d_loss = d_loss_fn + 1.0", "update tracker(d_loss)")
    check(the_error(text), "arithmetic on a function", at(text, 6, "d_loss_fn"))


def test_the_loss_depends_on_a_model_through_a_callable() -> None:
    text = wgan_like(
        "d_loss = d_loss_fn(x, x)",
        "minimize d_loss over critic using d_opt",
        "update tracker(d_loss)",
    )
    assert "the loss does not depend on `critic`: its gradient would be None" in [
        d.message for d in errors(text)
    ]


def test_a_layer_is_called_in_inference_mode_on_request() -> None:
    text = wgan_like(
        "a = augmenter(x, training=False)",
        "d_loss = mean(critic(a))",
        "minimize d_loss over critic using d_opt",
        "update tracker(d_loss)",
    )
    assert errors(text) == []
    assert "self.augmenter(x, training=False)" in stepc.compile_source(text, "t.step")


def test_init_callables_and_layers_are_serialized() -> None:
    text = wgan_like(
        "d_loss = mean(critic(augmenter(x)))", "minimize d_loss over critic using d_opt"
    )
    text = text.replace("augmenter: Layer)", "augmenter: Layer, score: Callable)")
    text += "        update tracker(score(d_loss))\n"
    module = stepc.compile_source(
        text.replace(", d_loss_fn: Callable, g_loss_fn: Callable", ""), "t"
    )
    assert 'config["augmenter"] = keras.saving.serialize_keras_object(self.augmenter)' in module
    assert 'config["score"] = keras.saving.serialize_keras_object(self.score)' in module


# ---------------------------------------------------------------- sub-model calls


def test_a_sub_model_takes_several_arguments() -> None:
    text = submodels(
        "mask = ones(shape(x))",
        "loss = mean(disc(gen(x, x, mask=mask), training=True))",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )
    assert errors(text) == []
    assert "self.gen(x, x, mask=mask, training=True)" in stepc.compile_source(text, "t.step")


def test_a_functional_model_itself_takes_no_other_keyword() -> None:
    text = functional("y_pred = self(x, foo=1)", *[line for line in KERAS_BODY[1:3]])
    assert "`self` has no parameter `foo`" in [d.message for d in errors(text)]


# ---------------------------------------------------------------- built optimizers and losses


def test_optimizers_built_from_compile_numbers() -> None:
    items = (
        "    optimizer optimizer = Adam(learning_rate=learning_rate)\n"
        "    optimizer probe_opt = SGD(learning_rate=1e-3, momentum=0.9)\n"
        "    loss huber_loss = Huber(delta=delta)\n"
    )
    body = (
        "y_pred = self(x)",
        "loss = huber_loss(y, y_pred)",
        "minimize loss over self",
        "return loss=loss",
    )
    text = keras_compile("learning_rate: float = 1e-4, delta: float = 1.0", *body, items=items)
    assert errors(text) == []
    assert [w.message for w in warnings(text)] == ["optimizer `probe_opt` is never used"]
    module = stepc.compile_source(text, "t.step")
    assert 'kwargs["optimizer"] = keras.optimizers.Adam(learning_rate=learning_rate)' in module
    assert "self.huber_loss = keras.losses.Huber(delta=delta)" in module
    start = module.index("def compile(")
    compile_method = module[start : module.index("\n    def ", start)]
    assert "self.huber_loss" in compile_method  # it reads a compile() number


def optimizer_item(item: str, params: str = "learning_rate: float = 1e-3") -> str:
    body = (*KERAS_BODY[:2], "minimize loss over self using opt", KERAS_BODY[3])
    return keras_compile(params, *body, items=f"    optimizer opt = {item}\n")


@pytest.mark.parametrize(
    ("item", "needle", "message", "hint"),
    [
        ("Adamm()", "Adamm", "unknown optimizer class `Adamm`", "did you mean `Adam`?"),
        ("Adam(lr=0.1)", "lr=", "`Adam` has no parameter `lr`", "did you mean `learning_rate`?"),
        (
            "Adam(learning_rate=rate)",
            "rate)",
            "constructor arguments must be literals or int/float parameters",
            "`rate` is not one: a literal, or the name of an int or float parameter of "
            "init(...) or compile(...)",
        ),
        (
            "Adam(use_ema=True)",
            "use_ema",
            "optimizer `opt` has use_ema, but fit() swaps the moving averages into the weights "
            "only for Keras's own model.optimizer",
            "name it `optimizer optimizer = ...` to make it Keras's own, or drop use_ema",
        ),
    ],
)
def test_optimizer_item_errors(item: str, needle: str, message: str, hint: str) -> None:
    text = optimizer_item(item)
    check(the_error(text), message, at(text, 3, needle), hint)


def test_an_optimizer_item_reads_only_numbers() -> None:
    text = optimizer_item("Adam(learning_rate=loss_fn)", "learning_rate: float, loss_fn: Loss")
    found = [d for d in errors(text) if d.message.startswith("constructor")]
    check(
        found[0],
        "constructor arguments must be literals or int/float parameters",
        at(text, 3, "loss_fn)"),
        "`loss_fn` is not one: a literal, or the name of an int or float parameter of "
        "init(...) or compile(...)",
    )


def test_keras_own_optimizer_may_average() -> None:
    text = keras_compile("", *KERAS_BODY, items="    optimizer optimizer = Adam(use_ema=True)\n")
    assert errors(text) == []


def test_an_optimizer_item_needs_compile() -> None:
    text = functional().replace("    train", "    optimizer opt = Adam()\n    train")
    found = [d for d in errors(text) if "compile()" in d.message]
    check(
        found[0],
        "optimizer `opt` is built in the model's compile(), which this model does not declare",
        at(text, 2, "optimizer"),
        "declare the model's compile(...) (it may take no parameters: `compile()`)",
    )


def test_keras_own_optimizer_declared_twice() -> None:
    text = keras_compile(
        "optimizer: Optimizer", *KERAS_BODY, items="    optimizer optimizer = Adam()\n"
    )
    check(the_error(text), "`optimizer` is already declared on line 2", at(text, 3, "optimizer ="))


def test_metrics_still_take_literals_only() -> None:
    text = keras_compile(
        "optimizer: Optimizer, k: int = 5",
        *KERAS_BODY,
        "update top(y, y_pred)",
        items="    metric top = TopKCategoricalAccuracy(k=k)\n",
    )
    check(
        the_error(text),
        "constructor arguments must be literals (numbers, strings, True, False, None)",
        at(text, 3, "k)"),
    )


# ---------------------------------------------------------------- a sub-model's shapes


def test_a_step_reads_a_sub_model_shape() -> None:
    text = submodels(
        "latent_dim = input_shape(gen)[1]",
        "width = output_shape(gen)[1:]",
        "z = normal((shape(x)[0], latent_dim))",
        "loss = mean(disc(gen(z))) + mean(zeros(width))",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )
    assert errors(text) == []
    module = stepc.compile_source(text, "t.step")
    assert "latent_dim = _input_shape(self.gen)[1]" in module
    assert "return tuple(model.output_shape)" in module  # the helper, defined once


@pytest.mark.parametrize("argument", ["x", "tracker", "g_opt"])
def test_a_shape_is_read_of_a_model_only(argument: str) -> None:
    text = submodels(f"n = input_shape({argument})[1]", *body_reading("n"))
    check(
        the_error(text),
        "input_shape(...) takes a model",
        at(text, 6, f"{argument})"),
        "a sub-model given to init(...), e.g. `input_shape(generator)[1]` for the size of "
        "its inputs' second axis",
    )


def body_reading(name: str) -> tuple[str, ...]:
    """The template's body, its loss also reading `name`."""
    return (
        f"loss = mean(disc(gen(x))) * {name}",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )


def test_a_sub_model_outputs_are_a_list_or_a_dict() -> None:
    text = submodels(
        "outs = gen(x)",
        'logits = outs["logits"]',
        "first = outs[0]",
        "a, b = disc(x)",
        "loss = mean(logits) + mean(first) + mean(a * b)",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )
    assert errors(text) == []
    module = stepc.compile_source(text, "t.step")
    assert (
        'logits = outs["logits"]' in module
        and "a, b = _full_precision(self.disc(x, training=True))" in module
    )


def test_a_name_of_a_model_shape_is_the_operation() -> None:
    text = functional().replace("    train", "    metric input_shape = Mean()\n    train")
    text += "        update input_shape(loss)\n"
    check(
        errors(text)[0],
        "`input_shape` would hide the operation of that name",
        at(text, 2, "input_shape"),
        "rename it",
    )
