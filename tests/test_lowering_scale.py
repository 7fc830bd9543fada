"""Which values the lowering takes as this replica's share of the batch's value
(no TensorFlow): the generated text says where a value is scaled for distribution
and unscaled for reporting. The numbers under MirroredStrategy are checked by the
distribution tests (tests/test_distribution.py, tests/test_published_self_supervised.py).
"""

from __future__ import annotations

import stepc

SPEC = """\
model M:
    init(m: Model)
    metric t = Mean(name="t")
    train(x):
{body}
        minimize s over m
        update t(s)
"""


def train_step(body: str) -> str:
    text = SPEC.format(body="\n".join(f"        {line}" for line in body.splitlines()))
    module = stepc.compile_source(text, "t.step")
    return module[module.index("    def train_step(") : module.index("    def test_step(")]


def test_a_sum_over_the_examples_is_a_replica_share() -> None:
    step = train_step("s = sum(square(m(x)))")
    assert "self.t.update_state(_unscale_for_distribution(s)" in step
    assert "_scale_for_distribution(s)" not in step


def test_a_sum_of_a_batch_mean_is_the_whole_value() -> None:
    # SCAN's entropy of the mean assignment: no axis of examples is left to share.
    for body in ("p = mean(m(x), axis=0)\ns = sum(p * p)", "s = sum(square(mean(m(x), 0)))"):
        step = train_step(body)
        assert "self.t.update_state(s," in step, body
        assert "_scale_for_distribution(s)" in step, body


def test_a_sum_of_a_reduction_over_another_axis_is_still_a_share() -> None:
    step = train_step("p = mean(m(x), axis=1)\ns = sum(p)")
    assert "self.t.update_state(_unscale_for_distribution(s)" in step


def test_a_sum_over_the_examples_by_their_count_is_a_mean() -> None:
    # Zero-DCE's losses: the replica's mean, an estimate of the whole value as mean() is,
    # and a per-batch scalar, so its tracker is weighted by the batch size.
    for body in (
        's = sum(square(m(x))) / cast(shape(x)[0], "float32")',
        'n = cast(shape(x)[0], "float32")\ns = sum(square(m(x))) / n',
    ):
        step = train_step(body)
        assert "self.t.update_state(s, sample_weight=_batch_size(x))" in step, body
        assert "_scale_for_distribution(s)" in step, body
        assert "_unscale_for_distribution" not in step, body


def test_a_sum_by_a_count_of_the_shape_is_a_per_batch_scalar() -> None:
    # Zero-DCE's illumination smoothness: its tracker is weighted by the batch size too.
    body = (
        'count = cast((shape(x)[1] - 1) * 2, "float32")\n'
        's = 2.0 * (sum(square(m(x))) / count) / cast(shape(x)[0], "float32")'
    )
    step = train_step(body)
    assert "self.t.update_state(s, sample_weight=_batch_size(x))" in step
    assert "_unscale_for_distribution" not in step
