"""The lowering's decisions about state (stepc.lower.state), read from the plan.

No framework: each test parses, checks and lowers a spec and compares plan records:
each state's variable, each update's value with what replicas gather (`@all_gather`)
or average (`@replica_mean`), where the shape is checked when traced, and that no
gradient region holds an update.
"""

from __future__ import annotations

from stepc.check.models import check
from stepc.lower.module import lower
from stepc.lower.plan import GATHER, REPLICA_MEAN, Compute, GradientRegion
from stepc.parse import ir
from stepc.parse.parser import parse

SPEC = """\
model Tracker:
    init(net: Model, size: int)
    state count: int = 0
    state queue: float[size, 2] = 0.0
    state mean_loss: float = 0.0
    state centre: float[2] = 0.0
    train(x, y):
        assign count = count + 1
        loss = mean(square(y - net(x)))
        minimize loss over net
        assign queue = concatenate([x, queue], axis=0)[:size]
        assign mean_loss = 0.5 * mean_loss + 0.5 * loss
        assign centre = mean(x, axis=0)
        return loss=loss
"""


def model_plan(text: str = SPEC):
    spec, found = parse(text, "t.step")
    checked, found = check(spec)
    assert not found, found
    plan, _ = lower(checked, text)
    return plan.models[0]


def updates(items) -> dict[str, Compute]:
    return {item.state.state: item for item in items if isinstance(item, Compute) and item.state}


def marked(expr, pseudo: str) -> list[str]:
    """The names `expr` wraps in the pseudo-call `pseudo`, in source order."""
    return [
        node.args[0].id
        for node in ir.walk(expr)
        if isinstance(node, ir.Call) and node.func.id == pseudo
    ]


def test_each_state_is_a_variable_of_its_dtype_and_shape():
    states = model_plan().states
    assert [(s.name, s.dtype) for s in states] == [
        ("count", "int32"),
        ("queue", "float32"),
        ("mean_loss", "float32"),
        ("centre", "float32"),
    ]
    size, width = states[1].shape
    assert (size.id, width.text) == ("size", "2")
    assert states[0].shape == () and states[0].initial.text == "0"


def test_batch_tensors_are_gathered_and_named_batch_scalars_averaged():
    found = updates(model_plan().steps[0].items)
    assert marked(found["count"].state.value, GATHER) == []
    assert marked(found["queue"].state.value, GATHER) == ["x"]
    assert marked(found["mean_loss"].state.value, REPLICA_MEAN) == ["loss"]
    assert marked(found["mean_loss"].state.value, GATHER) == []
    # A reduction of a batch tensor reduces the gathered batch (exact, for any reduction).
    assert marked(found["centre"].state.value, GATHER) == ["x"]


def test_a_shape_the_compiler_cannot_tell_is_checked_when_traced():
    found = updates(model_plan().steps[0].items)
    checked = {name: item.state.check_shape for name, item in found.items()}
    assert checked == {"count": False, "queue": True, "mean_loss": False, "centre": True}


def test_no_recording_holds_an_update():
    """`assign count` reads nothing recorded: before the region; the others after it."""
    items = model_plan().steps[0].items
    kinds = [
        "region" if isinstance(i, GradientRegion) else i.state.state if i.state else "other"
        for i in items
        if isinstance(i, GradientRegion | Compute)
    ]
    assert kinds.index("count") < kinds.index("region") < kinds.index("queue")
    region = next(i for i in items if isinstance(i, GradientRegion))
    assert not updates(region.body)


def test_a_derived_test_step_leaves_the_updates_out():
    text = SPEC.replace("        return loss=loss\n", "")
    text = text.replace("    train(x, y):", "    metric tracker = Mean()\n    train(x, y):")
    text += "        update tracker(loss)\n"
    steps = model_plan(text).steps
    assert [s.kind for s in steps] == [ir.StepKind.TRAIN, ir.StepKind.TEST]
    assert len(updates(steps[0].items)) == 4 and updates(steps[1].items) == {}


def test_a_model_output_in_a_new_value_is_cast_to_float32():
    """Under mixed_float16 a model returns float16; the state (and the queue it is
    concatenated with) is float32, so the output is cast where the value uses it."""
    text = SPEC.replace(
        "concatenate([x, queue], axis=0)", "concatenate([net(x) * ones((1, 2)), queue], axis=0)"
    )
    value = updates(model_plan(text).steps[0].items)["queue"].state.value
    assert [n.func.id for n in ir.walk(value) if isinstance(n, ir.Call)][:4] == [
        "concatenate",
        "@full_precision",
        "net",
        "@all_gather",
    ]
