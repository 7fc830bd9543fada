"""Driving `stepc lsp` with a real LSP client (pytest-lsp's, on pygls) over stdio.

Shared by the language server's tests and its latency benchmark: the server's
command and environment (this checkout's `stepc`, whatever the PYTHONPATH), and
`Documents`, which opens and changes documents and waits for the diagnostics the
server publishes for exactly that version.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from pathlib import Path

import stepc
from lsprotocol import types

PUBLISH = types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS
TIMEOUT = 60  # seconds: a hung server fails the test instead of hanging CI


def server_command() -> list[str]:
    return [sys.executable, "-m", "stepc", "lsp"]


def server_env() -> dict[str, str]:
    """The test's environment, with the `stepc` the test imports first on the path."""
    # Not resolved: in a checkout `stepc` may be a link to compiler/, found beside it.
    package_root = str(Path(stepc.__file__).parent.parent)
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def initialize_params() -> types.InitializeParams:
    """An editor's: UTF-16 positions (LSP's default), Markdown, rename with prepareRename."""
    general = types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16])
    markdown = [types.MarkupKind.Markdown]
    item = types.ClientCompletionItemOptions(documentation_format=markdown)
    text_document = types.TextDocumentClientCapabilities(
        rename=types.RenameClientCapabilities(prepare_support=True),
        hover=types.HoverClientCapabilities(content_format=markdown),
        completion=types.CompletionClientCapabilities(completion_item=item),
    )
    return types.InitializeParams(
        capabilities=types.ClientCapabilities(general=general, text_document=text_document)
    )


class Documents:
    """Open documents of one client: each change waits for its own diagnostics."""

    _names = itertools.count()

    def __init__(self, client, folder: Path):
        self.client, self.folder = client, folder
        self.versions: dict[str, int] = {}
        self.texts: dict[str, str] = {}

    def new_uri(self, stem: str = "spec") -> str:
        return (self.folder / f"{stem}_{next(self._names)}.step").as_uri()

    async def open(self, text: str, uri: str | None = None) -> tuple[str, list]:
        """Open a document; its URI and the diagnostics published for it."""
        uri = uri or self.new_uri()
        self.versions[uri], self.texts[uri] = 1, text
        item = types.TextDocumentItem(uri=uri, language_id="step", version=1, text=text)
        params = types.DidOpenTextDocumentParams(text_document=item)
        opened = await self._published(uri, 1, lambda: self.client.text_document_did_open(params))
        return uri, opened

    async def change(self, uri: str, text: str) -> list[types.Diagnostic]:
        """Replace the document's text; the diagnostics published for the new version."""
        version = self.versions[uri] = self.versions[uri] + 1
        self.texts[uri] = text
        params = types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
        return await self._published(
            uri, version, lambda: self.client.text_document_did_change(params)
        )

    def close(self, uri: str) -> None:
        identifier = types.TextDocumentIdentifier(uri=uri)
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(identifier))

    async def _published(self, uri: str, version: int, send) -> list[types.Diagnostic]:
        waiting = self._wait(uri, version)
        task = asyncio.ensure_future(waiting)
        await asyncio.sleep(0)  # the waiter is listening before the notification can arrive
        send()
        return await asyncio.wait_for(task, TIMEOUT)

    async def _wait(self, uri: str, version: int) -> list[types.Diagnostic]:
        while True:
            params = await self.client.wait_for_notification(PUBLISH)
            if params.uri == uri and params.version == version:
                return list(params.diagnostics)
