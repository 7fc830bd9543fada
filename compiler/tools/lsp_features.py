"""The language server's requests: hover, definition, references, rename, completion,
formatting and code actions.

Owns turning each request into a question to `stepc.tools.index` (a `SpecIndex`
per analysed version of the document, built on the first request that needs it)
or to the formatter `stepc.tools.fmt`, and each answer into LSP's types, every
position through `stepc.tools.positions`. Formatting is one edit of the whole
document, none when the text is formatted already or does not parse. A code
action is a quick fix for one published diagnostic with a mechanical fix (a
misspelt name and its suggestion); a refused rename is an LSP error that says why.
"""

from __future__ import annotations

import functools

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from stepc.diagnostics import SpecError
from stepc.tools.fmt import format_source
from stepc.tools.index import Completion, RenameRefused, SpecIndex, code_actions, index_source
from stepc.tools.lsp import Analysis, StepServer, to_lsp


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was understood and cannot be carried out."""

    CODE = -32803


_COMPLETION_KINDS = {
    "keyword": types.CompletionItemKind.Keyword,
    "model": types.CompletionItemKind.Class,
    "parameter": types.CompletionItemKind.Variable,
    "value": types.CompletionItemKind.Variable,
    "metric": types.CompletionItemKind.Field,
    "loss": types.CompletionItemKind.Field,
    "optimizer": types.CompletionItemKind.Field,
    "state": types.CompletionItemKind.Field,
    "operation": types.CompletionItemKind.Function,
    "class": types.CompletionItemKind.Class,
}


@functools.lru_cache(maxsize=8)
def _index(analysis: Analysis) -> SpecIndex:
    """The index of one analysed version (an Analysis is a new object on each change)."""
    return index_source(analysis.text, analysis.path)


def _at(ls: StepServer, params) -> tuple[Analysis, SpecIndex, int, int]:
    """The analysis and index of the request's document, and its cursor in stepc's terms."""
    analysis = ls.analysis(params.text_document.uri)
    line, column = analysis.positions.cursor(params.position)
    return analysis, _index(analysis), line, column


def _location(uri: str, analysis: Analysis, span) -> types.Location:
    return types.Location(uri, analysis.positions.range(span))


def hover(ls: StepServer, params: types.HoverParams) -> types.Hover | None:
    _, index, line, column = _at(ls, params)
    text = index.hover(line, column)
    if text is None:
        return None
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text))


def definition(ls: StepServer, params: types.DefinitionParams) -> types.Location | None:
    analysis, index, line, column = _at(ls, params)
    span = index.definition(line, column)
    return None if span is None else _location(params.text_document.uri, analysis, span)


def references(ls: StepServer, params: types.ReferenceParams) -> list[types.Location]:
    analysis, index, line, column = _at(ls, params)
    spans = index.references(line, column, params.context.include_declaration)
    return [_location(params.text_document.uri, analysis, span) for span in spans]


def prepare_rename(ls: StepServer, params: types.PrepareRenameParams) -> types.Range | None:
    """The range of the name under the cursor, if it is a name the spec declares."""
    analysis, index, line, column = _at(ls, params)
    for span in index.references(line, column, True):
        if _contains(span, line, column):
            return analysis.positions.range(span)
    return None


def _contains(span, line: int, column: int) -> bool:
    # The cursor may stand just after the name, as it does when one has typed it.
    return span.line == line == span.end_line and span.column <= column <= span.end_column


def rename(ls: StepServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
    analysis, index, line, column = _at(ls, params)
    try:
        spans = index.rename(line, column, params.new_name)
    except RenameRefused as refused:
        raise RequestFailed(str(refused)) from None
    if not spans:
        return None
    edits = [types.TextEdit(analysis.positions.range(s), params.new_name) for s in spans]
    return types.WorkspaceEdit(changes={params.text_document.uri: edits})


def completion(ls: StepServer, params: types.CompletionParams) -> types.CompletionList:
    _, index, line, column = _at(ls, params)
    items = [_completion_item(c) for c in index.completions(line, column)]
    return types.CompletionList(is_incomplete=False, items=items)


def _completion_item(completion: Completion) -> types.CompletionItem:
    documentation = None
    if completion.documentation:
        documentation = types.MarkupContent(types.MarkupKind.Markdown, completion.documentation)
    return types.CompletionItem(
        label=completion.label,
        kind=_COMPLETION_KINDS.get(completion.kind, types.CompletionItemKind.Text),
        detail=completion.detail or None,
        documentation=documentation,
    )


def formatting(ls: StepServer, params: types.DocumentFormattingParams) -> list[types.TextEdit]:
    """One edit replacing the whole document by its canonical layout; none if it is
    formatted already or does not parse (the diagnostics say why)."""
    analysis = ls.analysis(params.text_document.uri)
    try:
        formatted = format_source(analysis.text, analysis.path)
    except SpecError:
        return []
    if formatted == analysis.text:
        return []
    return [types.TextEdit(analysis.positions.whole(), formatted)]


def code_action(ls: StepServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """A quick fix for each diagnostic of the request that has a mechanical one."""
    analysis = ls.analysis(params.text_document.uri)
    asked = {_key(d) for d in params.context.diagnostics}
    actions = []
    for diagnostic in analysis.diagnostics:
        published = to_lsp(diagnostic, analysis.positions)
        if _key(published) in asked:
            actions += _fixes(params.text_document.uri, analysis, diagnostic, published)
    return actions


def _key(diagnostic: types.Diagnostic) -> tuple:
    start, end = diagnostic.range.start, diagnostic.range.end
    return (start.line, start.character, end.line, end.character, diagnostic.message)


def _fixes(uri: str, analysis: Analysis, diagnostic, published) -> list[types.CodeAction]:
    return [
        types.CodeAction(
            title=fix.title,
            kind=types.CodeActionKind.QuickFix,
            diagnostics=[published],
            is_preferred=True,
            edit=types.WorkspaceEdit(
                changes={uri: [types.TextEdit(analysis.positions.range(fix.span), fix.new_text)]}
            ),
        )
        for fix in code_actions(analysis.text, [diagnostic])
    ]


_COMPLETION_TRIGGERS = types.CompletionOptions(trigger_characters=["(", ",", " "])


def register(server: StepServer) -> None:
    """Register every request's handler on the server."""
    server.feature(types.TEXT_DOCUMENT_HOVER)(hover)
    server.feature(types.TEXT_DOCUMENT_DEFINITION)(definition)
    server.feature(types.TEXT_DOCUMENT_REFERENCES)(references)
    server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)(prepare_rename)
    server.feature(types.TEXT_DOCUMENT_RENAME)(rename)  # pygls announces prepareRename
    server.feature(types.TEXT_DOCUMENT_COMPLETION, _COMPLETION_TRIGGERS)(completion)
    server.feature(types.TEXT_DOCUMENT_FORMATTING)(formatting)
    quick_fixes = types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix])
    server.feature(types.TEXT_DOCUMENT_CODE_ACTION, quick_fixes)(code_action)
