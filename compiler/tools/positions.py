"""Positions between stepc and an LSP client: the one place they are converted.

stepc's spans are 1-based lines and columns counted in characters (code points)
of the text as `stepc.parse.sources.spec_text` gives it, end exclusive. LSP
positions are 0-based lines and columns counted in the code units of the
encoding agreed at `initialize` (UTF-16 unless the client offers another), in
the document as the client holds it. The lines agree: LSP and `spec_text` both
break lines at `\\n`, `\\r\\n` and a lone `\\r`. The columns of the first line
differ by a byte order mark, which `spec_text` drops and the client may keep.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec
from stepc.parse.ir import Span
from stepc.parse.sources import spec_text

_BOM = "\ufeff"


@dataclass(frozen=True)
class SpecPositions:
    """Converts spans of one version of a document to LSP ranges and back."""

    lines: tuple[str, ...]
    codec: PositionCodec
    bom_units: int  # code units of a byte order mark that opens the client's text

    @classmethod
    def of(cls, text: str, codec: PositionCodec | None = None) -> SpecPositions:
        codec = codec or PositionCodec()
        bom = codec.client_num_units(_BOM) if text.startswith(_BOM) else 0
        return cls(tuple(spec_text(text).split("\n")), codec, bom)

    def position(self, line: int, column: int) -> types.Position:
        """The LSP position of stepc's 1-based (line, column); past the end, the end."""
        index = line - 1
        if index >= len(self.lines):
            return self.end()
        text = self.lines[max(index, 0)]
        prefix = text[: max(column - 1, 0)]
        return types.Position(max(index, 0), self._units(index, prefix))

    def range(self, span: Span) -> types.Range:
        return types.Range(
            self.position(span.line, span.column), self.position(span.end_line, span.end_column)
        )

    def end(self) -> types.Position:
        """Where the document ends (after its last character)."""
        last = len(self.lines) - 1
        return types.Position(last, self._units(last, self.lines[last]))

    def whole(self) -> types.Range:
        """The range of the whole document."""
        return types.Range(types.Position(0, 0), self.end())

    def cursor(self, position: types.Position) -> tuple[int, int]:
        """stepc's 1-based (line, column) of the character at an LSP position."""
        index = min(position.line, len(self.lines) - 1)
        units = position.character - (self.bom_units if index == 0 else 0)
        column = 0
        for char in self.lines[index]:
            if units <= 0:
                break
            units -= self.codec.client_num_units(char)
            column += 1
        return index + 1, column + 1

    def _units(self, index: int, prefix: str) -> int:
        return self.codec.client_num_units(prefix) + (self.bom_units if index == 0 else 0)
