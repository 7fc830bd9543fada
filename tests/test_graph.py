"""`stepc graph` and `stepc explain`: the step pictures tell the compiler's decisions.

The facts of the pictures (recordings, passes and modes, which loss updates which
model with which optimizer, moved values, state and metric updates) for the specs
that show each; every shipped spec drawn in every format; the DOT read by real
Graphviz (when installed; CI must have it); the Mermaid well-formed; explain's
lines on the spec lines they name; the golden pictures and the README's blocks
current; and both commands end to end in a subprocess.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from stepc.diagnostics import SpecError
from stepc.tools.explain import explain
from stepc.tools.graph import (
    graphs_of_model,
    step_graphs,
    svg_of_model,
    to_dot,
    to_mermaid,
    to_svg,
)
from stepc.tools.step_records import RECORDING, REPEAT

from tests.support.constructs import line_of
from tests.update_golden import GRAPHS, README, ROOT, SPECS, expected_graphs, expected_readme

ALL_SPECS = sorted(SPECS.glob("*.step"))
EXPECTED_GRAPHS = expected_graphs()
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(
    not HAVE_DOT and not os.environ.get("CI"), reason="Graphviz (dot) is not installed"
)


def _graph(stem: str, step: str = "train", text: str | None = None, model: str | None = None):
    path = SPECS / f"{stem}.step"
    text = path.read_text(encoding="utf-8") if text is None else text
    graphs = step_graphs(text, f"{stem}.step")
    return next(g for g in graphs if g.step == step and (model is None or g.model == model))


def _nodes(graph, kind: str):
    return [node for node in graph.nodes if node.kind == kind]


def _labelled(graph, kind: str, first_line: str):
    return [node for node in _nodes(graph, kind) if node.label.split("\n")[0] == first_line]


def _edge(graph, source, target) -> bool:
    return any(e.source == source.id and e.target == target.id for e in graph.edges)


def _spec_line(stem: str, line: int) -> str:
    return (SPECS / f"{stem}.step").read_text(encoding="utf-8").split("\n")[line - 1]


# ---------------------------------------------------------------- facts of the pictures


def test_gan_two_recordings_each_loss_updating_its_model_with_its_optimizer():
    graph = _graph("gan")
    recordings = [c for c in graph.clusters if c.kind == RECORDING]
    assert [(c.first_line, c.last_line, c.parent) for c in recordings] == [
        (18, 19, ""),
        (22, 24, ""),
    ]
    for loss_name, optimizer, model in (
        ("d_loss", "d_optimizer", "discriminator"),
        ("g_loss", "g_optimizer", "generator"),
    ):
        (loss,) = [n for n in _nodes(graph, "loss") if n.label.endswith(loss_name)]
        (update,) = _labelled(graph, "optimizer", optimizer)
        (weights,) = _labelled(graph, "weights", f"{model} weights")
        assert _edge(graph, loss, update) and _edge(graph, update, weights)
        assert f"minimize {loss_name} over {model} using {optimizer}" in update.explanation
    (d_loss,) = [n for n in _nodes(graph, "loss") if n.label.endswith("d_loss")]
    assert d_loss.cluster == recordings[0].id  # the loss is computed under its recording


def test_gan_generator_passes_and_their_modes():
    train, test = _graph("gan"), _graph("gan", "test")
    passes = _labelled(train, "pass", "generator")
    assert [(p.line, p.training) for p in passes] == [(13, True), (22, True)]
    # The first generator pass needs no gradient to the discriminator: before its recording.
    assert passes[0].cluster == "" and passes[1].cluster != ""
    assert test.derived and all(p.training is False for p in _nodes(test, "pass"))
    assert not [c for c in test.clusters if c.kind == RECORDING]


def test_gan_metric_updates_fed_by_the_losses_and_reported():
    graph = _graph("gan")
    metrics = _nodes(graph, "metric")
    assert [(m.label.split("\n")[0], m.line) for m in metrics] == [
        ("update d_loss_tracker", 25),
        ("update g_loss_tracker", 26),
    ]
    (d_loss,) = [n for n in _nodes(graph, "loss") if n.label.endswith("d_loss")]
    assert _edge(graph, d_loss, metrics[0])
    assert "weighted by the batch size" in metrics[0].explanation
    (report,) = _nodes(graph, "report")
    assert all(_edge(graph, metric, report) for metric in metrics)


def test_wgan_gp_gradient_penalty_recording_nested_in_the_critics_inside_the_repeat():
    graph = _graph("wgan_gp")
    (loop,) = [c for c in graph.clusters if c.kind == REPEAT]
    recordings = {c.first_line: c for c in graph.clusters if c.kind == RECORDING}
    outer, inner = recordings[20], recordings[24]
    assert inner.parent == outer.id and outer.parent == loop.id
    assert (outer.first_line, outer.last_line) == (20, 28) and inner.lines == (24,)
    assert "nested" in inner.explanation
    (slopes,) = _nodes(graph, "gradient")
    assert slopes.cluster == outer.id and slopes.line == 24
    (critic_in_penalty,) = [p for p in _nodes(graph, "pass") if p.cluster == inner.id]
    assert critic_in_penalty.label.startswith("critic") and critic_in_penalty.training


def test_wgan_gp_random_mix_moved_before_the_recording_and_why():
    graph = _graph("wgan_gp")
    moved = {n.line: n for n in graph.nodes if n.moved}
    assert sorted(moved) == [22, 23]
    for node in moved.values():
        assert node.moved.startswith("moved before the recording (lines 20–28)")
        assert "no gradient" in node.moved
    assert [n.label.split("\n")[0] for n in moved.values()] == ["alpha", "mixed"]


def _line_in(spec: str):
    """The number of the line of a shipped spec holding a text (formatting moves lines)."""
    text = (SPECS / f"{spec}.step").read_text(encoding="utf-8")
    return lambda needle: line_of(text, needle)


def test_adamatch_state_write_moved_values_and_a_pass_in_inference_mode_by_the_spec():
    graph = _graph("adamatch")
    line = _line_in("adamatch")
    (state,) = _nodes(graph, "state")
    assert state.line == line("assign step = step + 1") and state.label == "state step"
    assert "no recording" in state.explanation
    moved = ["combined_source =", "pi =", "angle =", "warmup ="]
    assert sorted(n.line for n in graph.nodes if n.moved) == [line(m) for m in moved]
    inference = [p for p in _nodes(graph, "pass") if p.training is False]
    assert [p.line for p in inference] == [line("classifier(combined_source, training=False)")]
    assert "(as the spec says)" in inference[0].explanation
    (report,) = _nodes(graph, "report")
    assert report.label == "report\nloss_tracker"


def test_stylegan_state_writes_feed_what_reads_them_later():
    graph = _graph("stylegan")
    step, alpha = _nodes(graph, "state")
    line = _line_in("stylegan")
    assert (step.label, step.line) == ("state step", line("assign step ="))
    assert (alpha.label, alpha.line) == ("state alpha", line("assign alpha ="))
    assert _edge(graph, step, alpha)  # alpha is computed from the new step
    assert any(_edge(graph, alpha, p) for p in _nodes(graph, "pass"))
    assert all(node.cluster == "" for node in (step, alpha))  # no recording holds a write


def test_textual_inversion_apply_of_edited_gradients_and_frozen_models():
    graph = _graph("textual_inversion")
    (grads,) = _nodes(graph, "gradient")
    (update,) = _nodes(graph, "optimizer")
    (weights,) = _nodes(graph, "weights")
    assert _edge(graph, grads, update) and _edge(graph, update, weights)
    assert update.line == 46 and weights.label == "token_embedding weights"
    assert "edited gradients update token_embedding using optimizer" in update.explanation
    frozen = [p for p in _nodes(graph, "pass") if p.training is False]
    assert {p.label.split("\n")[0] for p in frozen} == {"text_encoder", "noise_predictor"}
    assert all("FrozenModel" in p.explanation for p in frozen)


def test_functional_model_keras_loss_tracker_update_moved_after_the_recording():
    graph = _graph("basic")
    (tracker,) = [m for m in _nodes(graph, "metric") if m.moved]
    assert tracker.line == 8 and tracker.moved.startswith("moved after the recording")
    assert "Keras's loss tracker" in tracker.explanation
    (weights,) = _nodes(graph, "weights")
    assert weights.label == "the model's weights"


HOISTED = """\
model Hoisted:
    init(net: Model, steps: int)
    compile(opt: Optimizer)
    metric tracker = Mean(name="loss")

    train(batch):
        x = batch["x"]
        doubled = x * 2.0
        repeat steps:
            g = gradient(sum(square(doubled)), x)
            loss = mean(square(net(x + g) - batch["y"]))
            minimize loss over net using opt
            update tracker(loss)
"""


def test_a_gradient_taken_once_before_the_loop_is_shown_moved():
    (train, _) = step_graphs(HOISTED, "hoisted.step")
    (gradient,) = _nodes(train, "gradient")
    assert gradient.line == 10 and gradient.moved.startswith("moved before the loop (lines 9–13)")
    assert gradient.label.startswith("g =")  # the spec's name, not the compiler's
    (loop,) = [c for c in train.clusters if c.kind == REPEAT]
    assert gradient.cluster != loop.id


def test_graphs_of_model_and_svg_of_model():
    text = (SPECS / "gan.step").read_text(encoding="utf-8")
    graphs = step_graphs(text, "gan.step")
    assert [g.name for g in graphs_of_model(graphs, "GAN")] == ["GAN.train_step", "GAN.test_step"]
    assert graphs_of_model(graphs, "Nope") == ()
    assert svg_of_model(text, "gan.step", "Nope") is None
    with pytest.raises(SpecError):
        step_graphs("model M:\n    train(x):\n        y = nope(x)\n", "bad.step")


# ---------------------------------------------------------------- every spec, every format

MERMAID_ID = r"[A-Za-z_][A-Za-z0-9_]*"
MERMAID_LABEL = r'"[^"]*"'
MERMAID_NODE = re.compile(
    rf"^{MERMAID_ID}(\[/|\[\\|\(\[|\[\(|\[\[|\{{\{{|\(|>|\[){MERMAID_LABEL}(/\]|\]\)|\)\]|\]\]|\}}\}}|\)|\])$"
)
MERMAID_EDGE = re.compile(rf"^{MERMAID_ID} -->(\|{MERMAID_LABEL}\|)? {MERMAID_ID}$")
MERMAID_OTHER = re.compile(
    rf"^(subgraph {MERMAID_ID}\[{MERMAID_LABEL}\]|end|style {MERMAID_ID} \S+|"
    rf"classDef {MERMAID_ID} \S.*|class {MERMAID_ID}(,{MERMAID_ID})* {MERMAID_ID})$"
)


def assert_well_formed_mermaid(text: str) -> None:
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "flowchart TB"
    depth = 0
    for line in (line.strip() for line in lines[1:]):
        depth += line.startswith("subgraph ") - (line == "end")
        assert depth >= 0, "an `end` closes no subgraph"
        assert MERMAID_NODE.match(line) or MERMAID_EDGE.match(line) or MERMAID_OTHER.match(line), (
            line
        )
    assert depth == 0, "a subgraph is not closed"


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_draws_in_every_format_and_explains(spec):
    graphs = step_graphs(spec.read_text(encoding="utf-8"), spec.name)
    assert graphs and all(g.nodes for g in graphs)
    dot = to_dot(graphs)
    assert dot.startswith("digraph stepc {") and dot.count("{") == dot.count("}")
    assert_well_formed_mermaid(to_mermaid(graphs))
    assert explain(spec.read_text(encoding="utf-8"), spec.name)
    for graph in graphs:
        ids = [node.id for node in graph.nodes]
        assert len(ids) == len(set(ids))
        assert all(e.source in ids and e.target in ids for e in graph.edges)


QUOTED = """\
model Quoted:
    init(net: Model)
    metric tracker = Mean(name="a \\"quoted\\" <loss> & #1")

    train(batch):
        minimize mean(square(batch["y"] - net(batch["x"]))) over net using optimizer
        update tracker(mean(square(batch["y"] - net(batch["x"]))))
"""


def test_spec_text_with_quotes_and_brackets_is_escaped():
    graphs = step_graphs(QUOTED, "quoted.step")
    (loss,) = _nodes(graphs[0], "loss")
    assert '["y"]' in loss.label  # the loss is an expression: its text labels it
    mermaid = to_mermaid(graphs)
    assert_well_formed_mermaid(mermaid)
    assert "#quot;y#quot;" in mermaid
    assert '\\"y\\"' in to_dot(graphs)


@needs_dot
@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda p: p.stem)
def test_graphviz_draws_every_spec(spec):
    assert HAVE_DOT, "CI installs Graphviz: `dot` must be on PATH"
    graphs = step_graphs(spec.read_text(encoding="utf-8"), spec.name)
    svg = to_svg(graphs)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert graphs[0].name in svg


@needs_dot
def test_graphviz_draws_escaped_labels():
    assert HAVE_DOT, "CI installs Graphviz: `dot` must be on PATH"
    ET.fromstring(to_svg(step_graphs(QUOTED, "quoted.step")))


@pytest.mark.parametrize("stem", ["gan", "wgan_gp", "adamatch", "textual_inversion"])
def test_explain_lines_name_the_spec_lines_they_come_from(stem):
    text = (SPECS / f"{stem}.step").read_text(encoding="utf-8")
    lines = explain(text, f"{stem}.step").splitlines()
    facts = [line for line in lines if line.startswith(f"{stem}.step:")]
    assert facts
    for fact in facts:
        number, sentence = re.match(rf"{stem}\.step:(\d+)  (.*)", fact).groups()
        quoted = re.findall(r"`([^`]+)`", sentence)
        if quoted:  # the statement, call or name it is about, as written on that line
            assert quoted[0][:20] in _spec_line(stem, int(number)).strip(), fact


def test_explain_gan_says_where_each_minimize_records():
    text = (SPECS / "gan.step").read_text(encoding="utf-8")
    lines = explain(text, "gan.step").splitlines()
    assert (
        "gan.step:19  `minimize d_loss over discriminator using d_optimizer`: one recording "
        "from line 18 to 19; discriminator called in training mode at 18"
    ) in lines
    assert "gan.step:19  discriminator's trainable variables, owned by d_optimizer" in lines
    assert any(line.startswith("gan.step:18  `d_loss` is differentiated") for line in lines)


# ---------------------------------------------------------------- goldens and README


@pytest.mark.parametrize("name", sorted(EXPECTED_GRAPHS))
def test_golden_graph_is_current(name):
    golden = GRAPHS / name
    assert golden.exists(), f"run `python tests/update_golden.py` to write {golden.name}"
    assert golden.read_text(encoding="utf-8") == EXPECTED_GRAPHS[name], (
        "the step picture changed; if intended run `python tests/update_golden.py`"
    )


def test_readme_pictures_are_current():
    text = README.read_text(encoding="utf-8")
    assert (
        "<!-- stepc graph specs/gan.step" in text and "<!-- stepc graph specs/wgan_gp.step" in text
    )
    assert text == expected_readme(), (
        "README's step pictures are stale; run `python tests/update_golden.py`"
    )


# ---------------------------------------------------------------- the commands


def _stepc(*args, env=None, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stepc", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_cli_each_format_on_stdout():
    dot = _stepc("graph", "specs/gan.step")
    assert dot.returncode == 0 and dot.stdout == to_dot(_all("gan")), dot.stderr
    mermaid = _stepc("graph", "specs/gan.step", "--format", "mermaid")
    assert mermaid.returncode == 0 and mermaid.stdout == to_mermaid(_all("gan"))
    if HAVE_DOT:
        svg = _stepc("graph", "specs/gan.step", "--format", "svg")
        assert svg.returncode == 0 and ET.fromstring(svg.stdout).tag.endswith("svg")


def _all(stem: str):
    return step_graphs((SPECS / f"{stem}.step").read_text(encoding="utf-8"), f"{stem}.step")


def test_cli_writes_a_file_and_filters_by_model_and_step(tmp_path):
    out = tmp_path / "gan.dot"
    run = _stepc("graph", "specs/gan.step", "--model", "GAN", "--step", "test", "-o", str(out))
    assert run.returncode == 0 and run.stdout == "", run.stderr
    text = out.read_text(encoding="utf-8")
    assert "cluster_GAN_test" in text and "cluster_GAN_train" not in text


def test_cli_refuses_an_unknown_model_or_step():
    model = _stepc("graph", "specs/gan.step", "--model", "Nope")
    assert model.returncode == 2 and "no model `Nope`" in model.stderr and "GAN" in model.stderr
    step = _stepc("graph", "specs/gan.step", "--step", "predict")
    assert step.returncode == 2 and "no predict step" in step.stderr


def test_cli_a_spec_with_errors_prints_its_diagnostics(tmp_path):
    spec = tmp_path / "bad.step"
    spec.write_text("model M:\n    train(x):\n        y = nope(x)\n", encoding="utf-8")
    for command in ("graph", "explain"):
        run = _stepc(command, str(spec), "--color", "never")
        assert run.returncode == 1 and run.stdout == ""
        assert re.search(r"bad\.step:3:\d+: error", run.stderr), run.stderr
        assert "^" in run.stderr and "Traceback" not in run.stderr
    missing = _stepc("graph", str(tmp_path / "missing.step"))
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_cli_svg_without_graphviz_says_so(tmp_path):
    run = _stepc("graph", "specs/gan.step", "--format", "svg", env={"PATH": str(tmp_path)})
    assert run.returncode == 1 and run.stdout == ""
    assert "Graphviz" in run.stderr and "--format dot" in run.stderr


def test_cli_explain_prints_and_filters(tmp_path):
    run = _stepc("explain", "specs/wgan_gp.step", "--model", "WGANGP")
    assert run.returncode == 0, run.stderr
    assert run.stdout == explain(
        (SPECS / "wgan_gp.step").read_text(encoding="utf-8"), "wgan_gp.step"
    )
    assert "moved before the recording" in run.stdout
    assert _stepc("explain", "specs/wgan_gp.step", "--model", "GAN").returncode == 2


def test_cli_unwritable_output_is_a_message(tmp_path):
    run = _stepc("graph", "specs/gan.step", "-o", str(tmp_path / "no" / "such" / "dir.dot"))
    assert run.returncode == 1 and "cannot write" in run.stderr and "Traceback" not in run.stderr
