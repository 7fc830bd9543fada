"""The language server's incremental diagnostics equal the whole file's.

`stepc.tools.lsp_analysis.IncrementalDiagnostics.diagnose` must give exactly
`stepc.pipeline.diagnose`'s list for every text, whatever came before it: the
shipped specs and broken variants, the latency benchmark's spec under each of its
edits, syntax errors coming and going, two models of one name, the gate between
the checker and the lowering across models, models moved by inserted lines (their
messages mention lines), and random edit sequences. Calls of the chunk analysis
and of the whole-file fallback are counted, to show which path each case took.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stepc.diagnostics import Severity
from stepc.pipeline import diagnose
from stepc.tools import lsp_analysis
from stepc.tools.lsp_analysis import IncrementalDiagnostics, model_chunks

from benchmarks.lsp_latency import edits, spec_of_lines
from tests.support.checker import SUBMODELS, body

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILES = sorted([*(ROOT / "specs").glob("*.step"), *(ROOT / "tests" / "specs").glob("*.step")])
SHIPPED = {path.name: path.read_text(encoding="utf-8") for path in SPEC_FILES}
GAN = SHIPPED["gan.step"]
PATH = "incremental.step"

# A model whose lowering finds an error (a loss computed across another minimize)
# that mentions two lines; and one with only a warning (an unused metric).
SPLIT_LOSS = SUBMODELS.replace("model G:", "model Split:") + body(
    "a = gen(x)",
    "d_loss = mean(disc(x))",
    "minimize d_loss over disc using d_opt",
    "b = mean(a + disc(x))",
    "minimize b over gen using g_opt",
    "update tracker(b)",
)
BASIC = "".join(line for line in SHIPPED["basic.step"].splitlines(True) if line[:1] != "#")
UNUSED_METRIC = BASIC.replace("model ", "model Unused", 1).replace(
    "\n    ", "\n    metric unused_tracker = Mean()\n    ", 1
)
MISSPELT_GAN = GAN.replace("labels + 0.05", "labls + 0.05", 1)


def broken(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def variants() -> dict[str, str]:
    """Every shipped spec, and broken variants of the GAN (one kind of error each)."""
    found = dict(SHIPPED)
    found["misspelt"] = MISSPELT_GAN
    found["syntax"] = broken(GAN, "axis=0)", "axis=0")
    found["undeclared"] = broken(GAN, "using d_optimizer", "using e_optimizer")
    found["unicode"] = broken(GAN, "labels +", "lab😀 +")
    found["crlf"] = MISSPELT_GAN.replace("\n", "\r\n")
    found["bom"] = "\ufeff" + GAN
    found["indent"] = broken(GAN, "        minimize d_loss", "      minimize d_loss")
    found["no tracker"] = broken(GAN, "update d_loss_tracker", "update d_tracker")
    found["nul"] = broken(GAN, "# ", "#\x00 ")
    found["empty"] = ""
    found["comments only"] = "# a spec\n\n# to come\n"
    found["code before the model"] = "x = 1\n" + GAN
    found["continued into a header"] = GAN.rstrip("\n") + " \\\n" + BASIC
    # Each chunk alone parses; the file does not (the `\\` puts the header on an indented line).
    found["a lone continuation before a header"] = GAN + "    \\\n" + BASIC
    return found


class Counted:
    """Counts the chunk analyses and the whole-file fallbacks of the module under test."""

    def __init__(self, monkeypatch) -> None:
        self.chunks = self.whole = 0
        analyse, whole = lsp_analysis.analyse_chunk, lsp_analysis.diagnose

        def counted_chunk(*args):
            self.chunks += 1
            return analyse(*args)

        def counted_whole(*args):
            self.whole += 1
            return whole(*args)

        monkeypatch.setattr(lsp_analysis, "analyse_chunk", counted_chunk)
        monkeypatch.setattr(lsp_analysis, "diagnose", counted_whole)

    def reset(self) -> None:
        self.chunks = self.whole = 0


@pytest.fixture
def counted(monkeypatch) -> Counted:
    return Counted(monkeypatch)


def same(incremental: IncrementalDiagnostics, text: str) -> list:
    """The incremental diagnostics of `text`, asserted equal to the whole file's."""
    found = incremental.diagnose(text, PATH)
    assert found == diagnose(text, PATH)
    return found


def test_every_spec_and_broken_variant() -> None:
    one_for_all = IncrementalDiagnostics()  # the cache carried from each text to the next
    for name, text in variants().items():
        assert IncrementalDiagnostics().diagnose(text, PATH) == diagnose(text, PATH), name
        assert one_for_all.diagnose(text, PATH) == diagnose(text, PATH), name


def test_every_spec_concatenated_and_each_removed(counted: Counted) -> None:
    """All shipped specs in one file (models renamed apart), then each model removed."""
    renamed = [
        re.sub(r"^model (\w+)", rf"model \g<1>{n}", t, flags=re.M)
        for n, t in enumerate(SHIPPED.values())
    ]
    text = "\n".join(renamed)
    chunks = model_chunks(text)
    incremental = IncrementalDiagnostics()
    same(incremental, text)
    for index in range(len(chunks)):
        same(incremental, "\n".join(c for i, (_, c) in enumerate(chunks) if i != index))
    assert counted.whole == 0


def test_the_benchmark_spec_under_its_edits(counted: Counted) -> None:
    """The latency benchmark's texts in its order: each equal to the whole file's, and
    at most the edited model analysed again (none when a text comes back)."""
    text = spec_of_lines()
    incremental = IncrementalDiagnostics()
    assert same(incremental, text) == []
    analysed = {}
    for kind, changed in edits(text, 40):
        counted.reset()
        found = same(incremental, changed)
        assert bool(found) == (kind == "misspell")
        analysed.setdefault(kind, set()).add(counted.chunks)
    assert counted.whole == 0
    assert analysed == {"misspell": {1}, "restore": {0}, "insert line": {1}, "remove line": {0}}


def test_a_syntax_error_coming_and_going(counted: Counted) -> None:
    text = "\n".join([GAN, SHIPPED["wgan_gp.step"], SHIPPED["vae.step"]])
    incremental = IncrementalDiagnostics()
    same(incremental, text)
    typing = ["axis=0", "axis=", "axis", "axi", "axis=0)"]  # the bracket deleted, retyped
    for typed in typing:
        found = same(incremental, broken(text, "axis=0)", typed))
        assert any(d.severity is Severity.ERROR for d in found) == (typed != "axis=0)")
    assert counted.whole == len(typing) - 1  # each text with the syntax error
    counted.reset()
    same(incremental, broken(text, "fake_images", "fake_imagez"))  # only the GAN again
    assert (counted.whole, counted.chunks) == (0, 1)


def test_two_models_of_one_name(counted: Counted) -> None:
    text = "\n".join([GAN, broken(SHIPPED["wgan_gp.step"], "model WGANGP", "model GAN")])
    found = same(IncrementalDiagnostics(), text)
    assert any("model `GAN` is already defined on line" in d.message for d in found)
    assert counted.whole == 1


def test_a_check_error_gates_every_models_lowering() -> None:
    """With a check error anywhere the pipeline does not lower: every other model's
    lowering errors come from the checker's preview, sorted with the rest."""
    incremental = IncrementalDiagnostics()
    clean = "\n".join([GAN, SPLIT_LOSS, UNUSED_METRIC])
    found = same(incremental, clean)
    messages = [d.message for d in found]
    assert any(m.startswith("the loss minimized on line") for m in messages)
    assert any(d.severity is Severity.WARNING for d in found)  # the unused metric
    gated = "\n".join([MISSPELT_GAN, SPLIT_LOSS, UNUSED_METRIC])
    found = same(incremental, gated)
    assert any(m.startswith("the loss minimized on line") for m in (d.message for d in found))
    assert found == sorted(found, key=lambda d: (d.span.line, d.span.column))
    same(incremental, clean)
    only_lowering = "\n".join([GAN, SPLIT_LOSS])
    assert [d.message for d in same(incremental, only_lowering)][-1].startswith("the loss")


def test_models_moved_by_inserted_lines(counted: Counted) -> None:
    """Lines inserted above a model whose messages mention lines: reused, moved."""
    declared_twice = broken(GAN, "    metric g_loss_tracker", "    metric d_loss_tracker")
    text = "\n".join([SHIPPED["basic.step"], declared_twice, SPLIT_LOSS])
    incremental = IncrementalDiagnostics()
    before = same(incremental, text)
    assert any("already declared on line" in d.message for d in before)
    for inserted in ("\n", "\n\n\n", "# a comment\n"):
        counted.reset()
        after = same(incremental, inserted + text)
        assert counted.chunks == 0 and counted.whole == 0  # moved, not analysed again
        assert [d.span.line for d in after] == [d.span.line + inserted.count("\n") for d in before]
    commented = "\n".join([SHIPPED["basic.step"], declared_twice + "# a line\n", SPLIT_LOSS])
    same(incremental, commented)
    counted.reset()
    same(incremental, "\n" + commented)
    assert counted.chunks == 1  # the model with the word `line` in its text, analysed again


def test_a_model_quoting_a_line_number_is_analysed_again(counted: Counted) -> None:
    """A message that quotes the user's text ("line 30", a metric's name, lies within
    the model's lines) must not be moved as if it were a line number."""
    metrics = '    metric tracker = Mean(name="line 30")\n    metric other = Mean(name="line 30")'
    named = broken(SPLIT_LOSS, "    metric tracker = Mean()", metrics)
    text = "\n".join([GAN, named])  # `named` is lines 28-39
    incremental = IncrementalDiagnostics()
    assert any('both named "line 30"' in d.message for d in same(incremental, text))
    counted.reset()
    same(incremental, "\n" + text)
    assert counted.chunks == 1  # the GAN moved; the other analysed again


# ---------------------------------------------------------------- random edit sequences

MULTI_MODEL = "\n".join([GAN, SHIPPED["basic.step"], SPLIT_LOSS, SHIPPED["lowlevel.step"]])
INSERTED_LINES = (
    "",
    "# line 3",
    "    metric extra = Mean()",
    "        z = 1",
    "model Extra(Functional):",
    "    train(x, y):",
    "\\",
)
CHARACTERS = ("x", "(", ")", ":", " ", "\\", "#", "=", '"')


def _apply(text: str, edit: tuple[str, int, int]) -> str:
    kind, where, what = edit
    lines = text.split("\n")
    line = where % len(lines)
    if kind == "insert line":
        lines.insert(line, INSERTED_LINES[what % len(INSERTED_LINES)])
    elif kind == "delete line" and len(lines) > 1:
        del lines[line]
    elif kind == "insert character":
        column = what % (len(lines[line]) + 1)
        char = CHARACTERS[what % len(CHARACTERS)]
        lines[line] = lines[line][:column] + char + lines[line][column:]
    elif kind == "delete character" and lines[line]:
        column = what % len(lines[line])
        lines[line] = lines[line][:column] + lines[line][column + 1 :]
    elif kind == "misspell":
        lines[line] = _misspelt(lines[line], what)
    elif kind == "duplicate header":
        lines = _duplicate_header(lines, what)
    return "\n".join(lines)


def _misspelt(line: str, what: int) -> str:
    words = [i for i in range(1, len(line)) if line[i - 1].isalpha() and not line[i].isalnum()]
    if not words:
        return line
    end = words[what % len(words)]
    return line[:end] + "q" + line[end:]


def _duplicate_header(lines: list[str], what: int) -> list[str]:
    """A model's header line given another model's name."""
    headers = [i for i, line in enumerate(lines) if line.startswith("model ")]
    if len(headers) < 2:
        return lines
    target, source = headers[what % len(headers)], headers[(what + 1) % len(headers)]
    name = re.match(r"model\s+(\w+)", lines[source])
    if name is not None:
        lines[target] = re.sub(r"^model\s+\w+", f"model {name.group(1)}", lines[target])
    return lines


EDITS = st.tuples(
    st.sampled_from(
        [
            "insert line",
            "delete line",
            "insert character",
            "delete character",
            "misspell",
            "duplicate header",
        ]
    ),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(EDITS, min_size=1, max_size=6))
def test_random_edit_sequences(sequence) -> None:
    incremental = IncrementalDiagnostics()
    text = MULTI_MODEL
    same(incremental, text)
    for edit in sequence:
        text = _apply(text, edit)
        assert incremental.diagnose(text, PATH) == diagnose(text, PATH), sequence
