"""`stepc lsp`: the language server, LSP over stdio on pygls.

Owns the server: text synchronisation (whole documents: pygls applies an
incremental edit to lines split as `str.splitlines` splits them, at U+2028 or a
form feed too, where LSP and stepc see no line break), the diagnostics published
on every open and change, which are `stepc check`'s (`stepc.pipeline.diagnose`,
computed by `stepc.tools.lsp_analysis` re-analysing only the models that changed:
the same messages, spans and hints, every error at once, the hint on a line of
its own under the message), and the analysis of each open document, kept for the
requests of `stepc.tools.lsp_features` until the next change. A custom command,
`stepc.importedModules`, lists the server's top-level modules (the tests assert
that TensorFlow and Keras are not among them). It never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from stepc import __version__
from stepc.diagnostics import Diagnostic, Severity, error
from stepc.parse.ir import Span
from stepc.tools.lsp_analysis import IncrementalDiagnostics
from stepc.tools.positions import SpecPositions

SOURCE = "stepc"
IMPORTED_MODULES = "stepc.importedModules"
_SEVERITY = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
}


@dataclass(frozen=True)
class Analysis:
    """One version of a document: its text, its positions and its diagnostics."""

    version: int | None
    text: str
    path: str
    positions: SpecPositions
    diagnostics: tuple[Diagnostic, ...]

    def published(self) -> list[types.Diagnostic]:
        return [to_lsp(d, self.positions) for d in self.diagnostics]


def to_lsp(diagnostic: Diagnostic, positions: SpecPositions) -> types.Diagnostic:
    """A stepc diagnostic as LSP's: the hint under the message, as `stepc check` prints it."""
    message = diagnostic.message
    if diagnostic.hint:
        message += f"\nhint: {diagnostic.hint}"
    return types.Diagnostic(
        range=positions.range(diagnostic.span),
        message=message,
        severity=_SEVERITY[diagnostic.severity],
        source=SOURCE,
    )


class StepServer(LanguageServer):
    """A pygls server that keeps the latest analysis of each open `.step` document."""

    def __init__(self) -> None:
        whole_documents = types.TextDocumentSyncKind.Full
        super().__init__(SOURCE, __version__, text_document_sync_kind=whole_documents)
        self.analyses: dict[str, Analysis] = {}
        self.diagnosers: dict[str, IncrementalDiagnostics] = {}  # each open document's

    def analysis(self, uri: str) -> Analysis:
        """The analysis of the document's current version (made now if it changed)."""
        document = self.workspace.get_text_document(uri)
        known = self.analyses.get(uri)
        if known is not None and (known.version, known.text) == (document.version, document.source):
            return known
        path = document.path or uri
        positions = SpecPositions.of(document.source, self.workspace.position_codec)
        diagnoser = self.diagnosers.setdefault(uri, IncrementalDiagnostics())
        found = tuple(_diagnostics(diagnoser, document.source, path))
        self.analyses[uri] = Analysis(document.version, document.source, path, positions, found)
        return self.analyses[uri]

    def publish(self, uri: str) -> None:
        analysis = self.analysis(uri)
        params = types.PublishDiagnosticsParams(uri, analysis.published(), analysis.version)
        self.text_document_publish_diagnostics(params)

    def forget(self, uri: str) -> None:
        """A closed document: its diagnostics are withdrawn."""
        self.analyses.pop(uri, None)
        self.diagnosers.pop(uri, None)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, []))


def _diagnostics(diagnoser: IncrementalDiagnostics, text: str, path: str) -> list[Diagnostic]:
    try:
        return diagnoser.diagnose(text, path)
    except Exception as exc:  # a bug of stepc's must not end the session of the editor
        message = f"stepc: internal error ({type(exc).__name__}: {exc}); please report it"
        return [error(message, Span(1, 1, 1, 2))]


def build_server() -> StepServer:
    """The server with every feature registered."""
    from stepc.tools.lsp_features import register  # the requests' handlers, over the analyses

    server = StepServer()
    _register_sync(server)
    register(server)
    return server


def _register_sync(server: StepServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: StepServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: StepServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: StepServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.forget(params.text_document.uri)

    @server.command(IMPORTED_MODULES)
    def imported_modules(ls: StepServer, *args) -> list[str]:
        return sorted({name.partition(".")[0] for name in sys.modules})


def run(args) -> int:
    """`stepc lsp [--stdio]`: serve over stdin and stdout until the client says exit."""
    server = build_server()
    server.start_io()
    # pygls reads stdin in a pool thread, blocked in read() until the client closes the
    # pipe, and the interpreter's exit would wait for that thread: leave at once, as
    # LSP's `exit` asks (its code: 0 after a `shutdown` request, else 1).
    code = 0 if server.protocol._shutdown else 1
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)
