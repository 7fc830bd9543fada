"""The formatter's page: blocks, indentation, blank lines and comments.

Owns printing a spec's full parse tree (`stepc.tools.fmt` parses it) line by
line, with the source's comments put back where they were. The grammar drops
comments, so they are read from the source lines and attached by line number:

* a comment on a line of its own stays above the statement it preceded, at that
  statement's indentation; one after a block's last statement stays in the
  block when it is indented at least as deep as the block (else it goes to the
  enclosing block that its indentation reaches);
* a trailing comment (`x = a  # why`) stays on its statement's last line, two
  spaces after the code (it does not count toward the line width);
* a comment inside a statement broken over several lines (in brackets) moves to
  just above the statement, as the statement is laid out anew.

Blank lines between statements or model items are kept as written, at most one;
none is kept after a block's header or at the start or end of the file; models
are always one blank line apart (the blank line goes above the comments right
above a model, which stay attached to it). Indentation is four spaces a level.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from lark import Token, Tree
from stepc.emit.pyexpr import INDENT
from stepc.parse.parser import indent_width
from stepc.tools.spec_docs import BLOCKS, LINES, body, header_colon, statement_lines


@dataclass(frozen=True)
class Comment:
    line: int  # 1-based
    column: int  # of its `#`, counted as the parser counts indentation
    text: str  # from `#`, without trailing whitespace


def comment_start(line: str) -> int | None:
    """The index of the `#` that starts the line's comment (not one in a string)."""
    quote, escaped = None, False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif quote:
            escaped = char == "\\"
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            return index
    return None


def print_spec(tree: Tree, lines: list[str]) -> str:
    """The canonical text of the spec whose source lines are `lines`."""
    page = _Page(lines, tree)
    page.block(_items(tree), 0, 0, 0)
    return "\n".join(page.out) + "\n" if page.out else ""


def _items(tree: Tree) -> list[Tree]:
    return [c for c in tree.children if isinstance(c, Tree)]


def _first_line(node: Tree) -> int:
    return node.meta.line


def _last_line(node: Tree) -> int:
    """The line of a statement's last token (its `_NL` runs on past comments); found
    without recursion, as a sum of thousands of terms is a tree thousands deep."""
    tokens = (c for tree in node.iter_subtrees() for c in tree.children if isinstance(c, Token))
    return max(token.end_line for token in tokens if _code(token))


def _code(token: Token) -> bool:
    return token.type not in ("_NL", "_INDENT", "_DEDENT")


class _Page:
    """The lines printed so far, and the source's comments not yet placed."""

    def __init__(self, lines: list[str], tree: Tree):
        self.source = lines
        self.alone: list[Comment] = []  # comments on lines of their own, in order
        self.trailing: dict[int, str] = {}
        blanks = [0]
        for number, text in enumerate(lines, start=1):
            self._read_comment(number, text)
            blanks.append(blanks[-1] + (not text.strip()))
        self.blanks = blanks  # blank lines among the first n: a prefix count
        self.starts = sorted(_first_line(n) for n in tree.iter_subtrees() if n.data in LINES)
        self.next = 0  # the first comment of `alone` not yet printed
        self.out: list[str] = []

    def _read_comment(self, number: int, text: str) -> None:
        start = comment_start(text)
        if start is None:
            return
        comment = text[start:].rstrip()
        if text[:start].strip():
            self.trailing[number] = comment
        else:
            self.alone.append(Comment(number, indent_width(text[:start]), comment))

    def block(self, items: list[Tree], depth: int, after: int, column: int) -> int:
        """Print a block's items; the last source line it covered."""
        last = after
        for index, item in enumerate(items):
            apart = depth == 0 and index > 0  # models are always a blank line apart
            last = self._leading(_first_line(item), depth, last, index == 0, apart)
            last = self._item(item, depth)
        return self._tail(depth, column, last)

    def _leading(self, before: int, depth: int, last: int, first: bool, apart: bool) -> int:
        """The comments above the line `before`, and the blank lines among them."""
        while self.next < len(self.alone) and self.alone[self.next].line < before:
            comment = self.alone[self.next]
            self.next += 1
            self._blank(last, comment.line, first, apart)
            self.out.append(INDENT * depth + comment.text)
            last, first, apart = comment.line, False, False
        self._blank(last, before, first, apart)
        return last

    def _blank(self, last: int, line: int, first: bool, apart: bool) -> None:
        """One blank line, where the source had any (or `apart`), never first in a block."""
        written = self.blanks[line - 1] > self.blanks[last] if line > last + 1 else False
        if self.out and not first and (apart or written):
            self.out.append("")

    def _item(self, item: Tree, depth: int) -> int:
        """One statement or item (a block: its header, then its body)."""
        is_block = item.data in BLOCKS
        end = header_colon(item).line if is_block else _last_line(item)
        for text in self._inside(_first_line(item), end):
            self.out.append(INDENT * depth + text)
        printed = statement_lines(item, INDENT * depth)
        if end in self.trailing:
            printed[-1] += "  " + self.trailing[end]
        self.out += printed
        if not is_block:
            return end
        statements = body(item)
        first = statements[0].meta
        column = indent_width(self.source[first.line - 1][: first.column - 1])
        return self.block(statements, depth + 1, end, column)

    def _inside(self, start: int, end: int) -> list[str]:
        """The comments on the lines of a statement (in its brackets) but its last line's."""
        found = [(n, self.trailing[n]) for n in range(start, end) if n in self.trailing]
        while self.next < len(self.alone) and self.alone[self.next].line <= end:
            found.append((self.alone[self.next].line, self.alone[self.next].text))
            self.next += 1
        return [text for _, text in sorted(found)]

    def _tail(self, depth: int, column: int, last: int) -> int:
        """The comments after a block's last statement that are indented into the block."""
        following = bisect.bisect_right(self.starts, last)
        limit = self.starts[following] if following < len(self.starts) else len(self.source) + 1
        while self.next < len(self.alone):
            comment = self.alone[self.next]
            if comment.line >= limit or comment.column < column:
                break
            self.next += 1
            self._blank(last, comment.line, False, False)
            self.out.append(INDENT * depth + comment.text)
            last = comment.line
        return last
