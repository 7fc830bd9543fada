"""`stepc lsp` end to end: a real LSP client (pytest-lsp) drives the server over stdio.

One server for the module (started as `python -m stepc lsp`, this checkout's
stepc): capabilities, diagnostics as `stepc check` gives them (on open, after
changes, after a syntax error, for every shipped spec and broken variants of
them), positions in UTF-16 around non-BMP characters, hover, definition,
references, rename, completion, formatting and the quick fix of a misspelt name.
No TensorFlow: the server must not import it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.support.lsp_client import (
    Documents,
    initialize_params,
    server_command,
    server_env,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.step"))
GAN = (ROOT / "specs" / "gan.step").read_text(encoding="utf-8")
SYNTAX_ERROR = """\
model M(Functional):
    train(x, y):
        y_pred = self(x
        loss = compiled_loss(y, y_pred)
        minimize loss over self
"""


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(server_command=server_command(), server_env=server_env()),
)
async def client(lsp_client: LanguageClient):
    lsp_client.initialize_result = await lsp_client.initialize_session(initialize_params())
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def documents(client: LanguageClient, tmp_path_factory) -> Documents:
    return Documents(client, tmp_path_factory.mktemp("lsp"))


def at(text: str, needle: str, nth: int = 0, offset: int = 0) -> types.Position:
    """The LSP position of the `nth` occurrence of `needle` (ASCII text), plus `offset`."""
    index = [m.start() for m in re.finditer(re.escape(needle), text)][nth] + offset
    line = text.count("\n", 0, index)
    return types.Position(line, index - (text.rfind("\n", 0, index) + 1))


def broken(text: str, *edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


GAN_TWO_ERRORS = broken(
    GAN,
    ("generated = generator(", "generated = genrator("),
    ("labels + 0.05", "labls + 0.05"),
)


# ---------------------------------------------------------------- the session


async def test_initialize_announces_every_feature(client: LanguageClient) -> None:
    capabilities = client.initialize_result.capabilities
    assert client.initialize_result.server_info.name == "stepc"
    assert capabilities.position_encoding == types.PositionEncodingKind.Utf16
    sync = capabilities.text_document_sync
    assert sync.open_close and sync.change == types.TextDocumentSyncKind.Full
    assert capabilities.hover_provider and capabilities.definition_provider
    assert capabilities.references_provider
    assert capabilities.rename_provider.prepare_provider
    assert capabilities.completion_provider is not None
    assert capabilities.document_formatting_provider
    assert capabilities.code_action_provider.code_action_kinds == [types.CodeActionKind.QuickFix]


async def test_server_never_imports_tensorflow(client: LanguageClient, documents) -> None:
    await documents.open(GAN_TWO_ERRORS)
    await documents.open(GAN)
    params = types.ExecuteCommandParams(command="stepc.importedModules")
    modules = await client.workspace_execute_command_async(params)
    assert "stepc" in modules and "pygls" in modules
    assert not {"tensorflow", "keras", "jax", "torch"} & set(modules)


# ---------------------------------------------------------------- diagnostics


async def test_every_error_at_once_with_hints(documents) -> None:
    _, diagnostics = await documents.open(GAN_TWO_ERRORS)
    assert [(d.range.start.line, d.range.start.character) for d in diagnostics] == [
        (12, 20),
        (16, 17),
    ]
    first, second = diagnostics
    assert first.message == (
        "`genrator` is not an allowed operation\nhint: did you mean `generator`?"
    )
    assert first.range.end == types.Position(12, 28)
    assert second.message == "undefined name `labls`\nhint: did you mean `labels`?"
    assert {d.severity for d in diagnostics} == {types.DiagnosticSeverity.Error}
    assert {d.source for d in diagnostics} == {"stepc"}


async def test_changes_fix_and_introduce_errors(documents) -> None:
    uri, diagnostics = await documents.open(GAN)
    assert diagnostics == []
    assert len(await documents.change(uri, GAN_TWO_ERRORS)) == 2
    fixed_one = broken(GAN, ("labels + 0.05", "labls + 0.05"))
    (left,) = await documents.change(uri, fixed_one)
    assert left.message.startswith("undefined name `labls`")
    assert await documents.change(uri, GAN) == []


async def test_syntax_error_is_a_diagnostic_and_the_server_goes_on(documents) -> None:
    uri, diagnostics = await documents.open(SYNTAX_ERROR)
    (diagnostic,) = diagnostics
    assert diagnostic.message.startswith("`(` is never closed\nhint: add the `)`")
    assert diagnostic.range.start == types.Position(2, 21)
    for cut in range(0, len(GAN), 97):  # every prefix a typist passes through
        await documents.change(uri, GAN[:cut])
    assert await documents.change(uri, GAN) == []


async def test_closing_a_document_withdraws_its_diagnostics(client, documents) -> None:
    uri, diagnostics = await documents.open(SYNTAX_ERROR)
    assert diagnostics
    waiting = client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    documents.close(uri)
    params = await waiting
    assert params.uri == uri and list(params.diagnostics) == []


def _variants() -> dict[str, str]:
    """The shipped specs, and broken variants of them (one kind of error each)."""
    specs = {path.name: path.read_text(encoding="utf-8") for path in SPECS}
    specs["gan_misspelt.step"] = GAN_TWO_ERRORS
    specs["gan_syntax.step"] = broken(GAN, ("axis=0)", "axis=0"))
    specs["gan_undeclared.step"] = broken(GAN, ("using d_optimizer", "using e_optimizer"))
    specs["gan_unicode.step"] = broken(GAN, ("# Decode", "# 😀 é Decode"), ("labels +", "lab😀 +"))
    specs["gan_crlf.step"] = GAN_TWO_ERRORS.replace("\n", "\r\n")
    specs["gan_no_tracker.step"] = broken(GAN, ("update d_loss_tracker", "update d_tracker"))
    specs["gan_indent.step"] = broken(GAN, ("        minimize d_loss", "      minimize d_loss"))
    specs["empty.step"] = ""
    specs["syntax.step"] = SYNTAX_ERROR
    return specs


def _check_json(folder: Path, specs: dict[str, str]) -> dict[str, list[dict]]:
    """`stepc check --format json` of every spec, by file name."""
    for name, text in specs.items():
        (folder / name).write_bytes(text.encode("utf-8"))
    command = [sys.executable, "-m", "stepc", "check", "--format", "json", *sorted(specs)]
    done = subprocess.run(
        command, cwd=folder, env=server_env(), capture_output=True, text=True, timeout=120
    )
    records: dict[str, list[dict]] = {name: [] for name in specs}
    for record in json.loads(done.stdout):
        records[record["path"]].append(record)
    return records


def _utf16_column(line: str, column: int) -> int:
    return len(line[: column - 1].encode("utf-16-le")) // 2


def _as_published(record: dict, text: str) -> tuple:
    """A `stepc check` JSON record as the server must publish it (UTF-16 columns)."""
    lines = text.replace("\r\n", "\n").split("\n")
    message = record["message"] + (f"\nhint: {record['hint']}" if record["hint"] else "")
    start = _utf16_column(lines[record["line"] - 1], record["column"])
    end = _utf16_column(lines[record["end_line"] - 1], record["end_column"])
    start_line, end_line = record["line"] - 1, record["end_line"] - 1
    return (record["severity"], start_line, start, end_line, end, message)


def _published(diagnostic: types.Diagnostic) -> tuple:
    severity = {
        types.DiagnosticSeverity.Error: "error",
        types.DiagnosticSeverity.Warning: "warning",
    }
    start, end = diagnostic.range.start, diagnostic.range.end
    return (
        severity[diagnostic.severity],
        start.line,
        start.character,
        end.line,
        end.character,
        diagnostic.message,
    )


async def test_diagnostics_are_those_of_stepc_check(documents, tmp_path) -> None:
    specs = _variants()
    expected = _check_json(tmp_path, specs)
    assert sum(map(len, expected.values())) >= 10  # the broken variants do fail
    for name, text in specs.items():
        _, diagnostics = await documents.open(text, (tmp_path / name).as_uri())
        want = sorted(_as_published(record, text) for record in expected[name])
        assert sorted(map(_published, diagnostics)) == want, name
