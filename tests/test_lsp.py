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
from pygls.exceptions import JsonRpcException
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
    assert list(capabilities.code_action_provider.code_action_kinds) == ["quickfix"]


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


# ---------------------------------------------------------------- requests


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    """The text with LSP edits applied, positions read as UTF-16 code units."""
    lines = text.split("\n")

    def offset(position: types.Position) -> int:
        line = lines[position.line].encode("utf-16-le")[: 2 * position.character]
        return sum(len(x) + 1 for x in lines[: position.line]) + len(line.decode("utf-16-le"))

    for edit in sorted(edits, key=lambda e: offset(e.range.start), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


def _doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


async def _hover(client, uri: str, position: types.Position) -> str | None:
    params = types.HoverParams(text_document=_doc(uri), position=position)
    found = await client.text_document_hover_async(params)
    return None if found is None else found.contents.value


async def test_hover_on_a_value_a_parameter_and_an_operation(client, documents) -> None:
    uri, _ = await documents.open(GAN)
    value = await _hover(client, uri, at(GAN, "generated", 1))
    assert "`generated`: tensor" in value and "line 13" in value
    parameter = await _hover(client, uri, at(GAN, "latent_dim", 1))
    assert parameter.startswith("`latent_dim: int`") and "constructor parameter" in parameter
    operation = await _hover(client, uri, at(GAN, "concatenate", 0, offset=3))
    assert "concatenate(xs, axis=0)" in operation and "keras.ops.concatenate" in operation
    assert await _hover(client, uri, at(GAN, "# Decode")) is None  # a comment


async def test_definition_and_references(client, documents) -> None:
    uri, _ = await documents.open(GAN)
    use = at(GAN, "generated", 1)
    params = types.DefinitionParams(text_document=_doc(uri), position=use)
    found = await client.text_document_definition_async(params)
    assignment = at(GAN, "generated", 0)
    assert found.uri == uri and found.range.start == assignment
    assert found.range.end == types.Position(assignment.line, assignment.character + 9)
    context = types.ReferenceContext(include_declaration=True)
    params = types.ReferenceParams(context=context, text_document=_doc(uri), position=assignment)
    spans = await client.text_document_references_async(params)
    assert [r.range.start for r in spans] == [assignment, use]


async def test_rename_everywhere_and_the_result_checks(client, documents) -> None:
    uri, _ = await documents.open(GAN)
    where = at(GAN, "generated", 1, offset=4)
    prepared = await client.text_document_prepare_rename_async(
        types.PrepareRenameParams(text_document=_doc(uri), position=where)
    )
    assert prepared.start == at(GAN, "generated", 1)
    params = types.RenameParams(text_document=_doc(uri), position=where, new_name="fakes")
    edit = await client.text_document_rename_async(params)
    renamed = _apply(GAN, edit.changes[uri])
    assert "generated" not in renamed and renamed.count("fakes") == 2
    assert await documents.change(uri, renamed) == []


async def test_refused_rename_says_why(client, documents) -> None:
    uri, _ = await documents.open(GAN)
    params = types.RenameParams(
        text_document=_doc(uri), position=at(GAN, "generated", 1), new_name="model"
    )
    with pytest.raises(JsonRpcException) as refused:
        await client.text_document_rename_async(params)
    assert refused.value.code == -32803 and "keyword" in refused.value.message


async def _labels(client, uri: str, position: types.Position) -> dict[str, types.CompletionItem]:
    params = types.CompletionParams(text_document=_doc(uri), position=position)
    found = await client.text_document_completion_async(params)
    return {item.label: item for item in found.items}


async def test_completion_in_a_step_and_at_an_item_start(client, documents) -> None:
    text = broken(GAN, ("        update d_loss_tracker", "        \n        update d_loss_tracker"))
    uri, _ = await documents.open(text)
    blank = at(text, "        \n", offset=8)
    in_step = await _labels(client, uri, blank)
    assert {"minimize", "update", "generated", "d_loss"} <= set(in_step)
    assert in_step["minimize"].kind == types.CompletionItemKind.Keyword
    assert in_step["generated"].kind == types.CompletionItemKind.Variable
    text = broken(GAN, ("    metric g_loss", "    \n    metric g_loss"))
    await documents.change(uri, text)
    item_start = await _labels(client, uri, at(text, "    \n", offset=4))
    assert {"metric", "train", "state"} <= set(item_start)
    assert "generated" not in item_start


async def test_completion_of_an_operation_has_its_signature(client, documents) -> None:
    text = broken(GAN, ("combined = concatenate(", "combined = concat("))
    uri, _ = await documents.open(text)
    items = await _labels(client, uri, at(text, "concat(", offset=6))
    operation = items["concatenate"]
    assert operation.kind == types.CompletionItemKind.Function
    assert "axis" in operation.detail and "keras.ops" in operation.documentation.value


async def test_formatting_is_one_whole_document_edit(client, documents) -> None:
    messy = broken(GAN, ("axis=0)", "axis = 0 )"), ("latent_dim: int)", "latent_dim:int )"))
    uri, _ = await documents.open(messy)
    options = types.FormattingOptions(tab_size=4, insert_spaces=True)
    params = types.DocumentFormattingParams(text_document=_doc(uri), options=options)
    (edit,) = await client.text_document_formatting_async(params)
    assert edit.range.start == types.Position(0, 0)
    assert _apply(messy, [edit]) == GAN  # the shipped spec is formatted
    await documents.change(uri, GAN)
    assert list(await client.text_document_formatting_async(params)) == []
    await documents.change(uri, SYNTAX_ERROR)
    assert list(await client.text_document_formatting_async(params)) == []  # does not parse


async def _quick_fixes(client, uri, diagnostics) -> list[types.CodeAction]:
    context = types.CodeActionContext(diagnostics=diagnostics)
    everything = types.Range(types.Position(0, 0), types.Position(10_000, 0))
    params = types.CodeActionParams(text_document=_doc(uri), range=everything, context=context)
    return await client.text_document_code_action_async(params)


async def test_quick_fix_of_a_misspelt_name_removes_its_diagnostic(client, documents) -> None:
    uri, diagnostics = await documents.open(GAN_TWO_ERRORS)
    misspelt = [d for d in diagnostics if "labls" in d.message]
    (action,) = await _quick_fixes(client, uri, misspelt)
    assert action.kind == types.CodeActionKind.QuickFix and "labels" in action.title
    assert list(action.diagnostics) == misspelt
    fixed = _apply(GAN_TWO_ERRORS, action.edit.changes[uri])
    (left,) = await documents.change(uri, fixed)
    assert "genrator" in left.message
    assert list(await _quick_fixes(client, uri, misspelt)) == []  # that one is gone


async def test_positions_count_utf16_units_around_non_bmp_characters(client, documents) -> None:
    # Each 😀 is one character for stepc and two UTF-16 code units for the client.
    line = '        labels = cast(labels, "😀😀") + 0.05 * uniform(shape(labls))'
    text = broken(GAN, ("        labels = labels + 0.05 * uniform(shape(labels))", line))
    uri, diagnostics = await documents.open(text)
    (misspelt,) = [d for d in diagnostics if "labls" in d.message]
    column = line.index("labls")
    assert misspelt.range.start.character == column + 2
    assert misspelt.range.end.character == column + 2 + len("labls")
    (action,) = await _quick_fixes(client, uri, [misspelt])
    fixed = _apply(text, action.edit.changes[uri])
    assert "shape(labels))" in fixed and '"😀😀"' in fixed
    hover_at = types.Position(misspelt.range.start.line, line.index("uniform") + 2)
    assert "keras.random.uniform" in await _hover(client, uri, hover_at)
