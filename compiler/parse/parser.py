"""Stage 1: spec text to IR.

Owns reading the grammar, the LALR parser with its Python-style indenter, and
the syntax diagnostics: positions, the expected tokens in words a user knows,
and recovery (the text side is `stepc.parse.recover`) so that one run reports the
syntax errors of every statement and still gives the checker a partial IR.
The IR is built during the parse by `stepc.parse.ir_builder`.
"""

from __future__ import annotations

import functools
import re

import lark
from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError, Indenter
from stepc.cache import cache_file
from stepc.diagnostics import Diagnostic, error
from stepc.parse import ir
from stepc.parse.ir_builder import ToIR
from stepc.parse.lexing import DeferredContextualLexer
from stepc.parse.recover import (
    PLACEHOLDER,
    Statement,
    closes_later,
    header_without_body,
    logical_lines,
    replace,
    statement_at,
    statement_before,
)
from stepc.parse.sources import code_positions, content_problems, spec_text
from stepc.resources import grammar_text

MAX_SYNTAX_ERRORS = 20
# The most digits a whole number may have (the grammar's NUMBER stops there): the
# smallest limit `sys.set_int_max_str_digits` allows, so that int() of any literal
# works in every interpreter, whatever its setting.
MAX_INT_DIGITS = 640


def indent_width(indent: str) -> int:
    """The column a line's code starts at, counted as Python counts it: a tab goes to
    the next multiple of 8, and a form feed starts the count again."""
    return len(indent.rpartition("\f")[2].expandtabs(8))


def _leading_space(text: str) -> str:
    return text[: len(text) - len(text.lstrip(" \t\f"))]


class StepIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token: Token):
        """Lark's, with Python's count of tabs and form feeds (Lark counts every tab
        as 8 columns, so `"  \\t"` would be column 10, not 8), and a bad dedent raised
        before the dedents it would end blocks with (they made it look like an
        empty block)."""
        if self.paren_level > 0:
            return
        yield token
        indent_str = token.rpartition("\n")[2]
        indent = indent_width(indent_str)
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield Token.new_borrow_pos(self.INDENT_type, indent_str, token)
            return
        if indent not in self.indent_level:  # before any dedent: it is not a block's end
            raise DedentError(f"dedent to column {indent}, not one of {self.indent_level}")
        while indent < self.indent_level[-1]:
            self.indent_level.pop()
            yield Token.new_borrow_pos(self.DEDENT_type, indent_str, token)


@functools.cache
def _parser() -> Lark:
    # The IR is built while parsing: no parse tree, no position propagation (spans
    # come from tokens), which halves the time of a parse.
    return _lark("grammar", transformer=ToIR())


def _lark(cache_kind: str, **options) -> Lark:
    """A parser of the grammar with stepc's lexer and indenter, and `options`."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        postlex=StepIndenter(),
        maybe_placeholders=True,
        # The same tokens as Lark's contextual lexer, without compiling a regular
        # expression for every parser state a small spec reaches (stepc.parse.lexing).
        _plugins={"ContextualLexer": DeferredContextualLexer},
        # The LALR tables, pickled in stepc's cache directory (stepc.cache; Lark checks
        # the file's digest, and rebuilds on a mismatch or an unreadable file):
        # building them is most of a first `stepc compile`.
        cache=cache_file(cache_kind, grammar_text(), lark.__version__) or False,
        **options,
    )


@functools.cache
def keyword_terminals() -> dict[str, frozenset[str]]:
    """The grammar's keyword terminals and the words each reserves (`MODEL.2: /model\\b/`,
    `STEP_KIND.2: /(train|test|predict)\\b/`), read from the parser, so that the grammar
    file stays the one list (the index refuses them as new names; the highlighters'
    tests compare their keywords with them)."""
    found = {}
    for terminal in _parser().terminals:
        words = _KEYWORD_PATTERN.fullmatch(terminal.pattern.value)
        if terminal.pattern.type == "re" and words:
            found[terminal.name] = frozenset(words.group(1).split("|"))
    return found


@functools.cache
def keywords() -> frozenset[str]:
    """Every word the grammar reserves (`keyword_terminals`)."""
    return frozenset().union(*keyword_terminals().values())


# A keyword terminal's pattern: a word, or a group of alternative words, then `\b`.
_KEYWORD_PATTERN = re.compile(r"\(?(\w+(?:\|\w+)*)\)?\\b")


@functools.cache
def token_tree_parser() -> Lark:
    """The same grammar and indenter building a parse tree that keeps every token,
    with positions: the formatter's (`stepc.tools.fmt`), which needs the parentheses
    and commas that the IR does without. Only for text that `parse` accepts."""
    return _lark("token-tree-grammar", keep_all_tokens=True, propagate_positions=True)


def parse(source: str, path: str) -> tuple[ir.Spec | None, list[Diagnostic]]:
    """Parse a spec: its IR and one diagnostic per syntax error.

    After a syntax error the bad statement is replaced by a stand-in
    (`stepc.parse.recover`) and the text parsed again, so one run reports every bad
    statement and the IR still holds every good one: the checker then reports
    the semantic errors too. Errors at the end of a block or of the file after a
    first error are its consequences and are not reported. None only when
    recovery could not get a whole parse (the diagnostics still say why).
    """
    text = spec_text(source)
    if PLACEHOLDER in text:  # the stand-in must be unambiguous
        return None, content_problems(text)
    lines = text.split("\n")
    diagnostics: list[Diagnostic] = []
    recovered: list[ir.Recovered] = []
    for _ in range(2 * MAX_SYNTAX_ERRORS):  # follow-on errors are not counted
        try:
            models = _parser().parse("\n".join(lines) + "\n")
        except (UnexpectedInput, DedentError) as exc:
            if not (diagnostics and _is_follow_on(exc)):
                diagnostics.append(_syntax_diagnostic(exc, lines))
            record = _recover(exc, lines) if len(diagnostics) < MAX_SYNTAX_ERRORS else None
            if record is None:
                return None, diagnostics
            recovered.append(record)
            continue
        return ir.Spec(path, models, tuple(sorted(recovered, key=_line_of))), diagnostics
    return None, diagnostics


def _line_of(record: ir.Recovered) -> int:
    return record.span.line


def _is_follow_on(exc: Exception) -> bool:
    if isinstance(exc, UnexpectedEOF):
        return True
    token = getattr(exc, "token", None)
    # RECOVERED: a stand-in the grammar does not accept there is an earlier error's.
    return isinstance(token, Token) and token.type in ("_DEDENT", "_INDENT", "$END", "RECOVERED")


def _recover(exc: Exception, lines: list[str]) -> ir.Recovered | None:
    """Replace the statement that holds the error (see stepc.parse.recover)."""
    if isinstance(exc, DedentError):
        return _replace_misindented(lines, _first_bad_dedent(lines))
    token = getattr(exc, "token", None)
    if isinstance(token, Token) and token.type == "_INDENT":
        return _replace_misindented(lines, _indented_line(lines, token.line))
    line, column = _error_position(exc, lines)
    opener = _never_closed(exc, lines, line, column)
    if opener is not None:  # the statement is taken to end on the bracket's line
        return replace(lines, Statement(statement_at(lines, opener[0]).first, opener[0]))
    header = _missing_body(exc, lines, line, column)
    if header is not None:
        return replace(lines, header, block=False)
    if isinstance(exc, UnexpectedEOF) or (isinstance(token, Token) and token.type == "$END"):
        last = statement_before(lines, len(lines) + 1)
        return replace(lines, last) if last else None
    return replace(lines, statement_at(lines, line))


def _missing_body(exc, lines: list[str], line: int, column: int) -> Statement | None:
    """The block header whose body is missing, when that is what the error is."""
    token = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or (isinstance(token, Token) and token.type == "$END"):
        last = statement_before(lines, len(lines) + 1)
        return header_without_body(lines, last.last, False) if last else None
    if isinstance(exc, UnexpectedCharacters) or not isinstance(token, Token):
        return None
    if token.type in ("_DEDENT", "_NL"):
        return header_without_body(lines, line, False)
    text = lines[line - 1] if line <= len(lines) else ""
    at_start = column == len(_leading_space(text)) + 1
    return header_without_body(lines, line, True) if at_start else None


def _replace_misindented(lines: list[str], line: int) -> ir.Recovered | None:
    """A stand-in indented like the statement above (the user's likely intent), or
    one level deeper if that is a block header (the line is then its body)."""
    above = statement_before(lines, line)
    indent = _leading_space(lines[above.first - 1]) if above else ""
    if above and header_without_body(lines, above.last, False):
        indent += "    "
    return replace(lines, statement_at(lines, line), indent, block=False)


# ---------------------------------------------------------------- syntax errors

_TOKEN_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "_NL": "the end of the line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of the block",
    "$END": "the end of the file",
    "STEP_KIND": "`train`, `test` or `predict`",
    "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*`, `/`, `//`, `%` or `@`",
    "COMPARE_OP": "a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`)",
    "OPTIONAL": "`?`",
}


def _syntax_diagnostic(exc: Exception, lines: list[str]) -> Diagnostic:
    if isinstance(exc, DedentError):
        return _dedent_diagnostic(str(exc), lines)
    line, column = _error_position(exc, lines)
    token = getattr(exc, "token", None)
    if isinstance(token, Token) and token.type == "_INDENT":
        return _indent_diagnostic(lines, line)
    header = _missing_body(exc, lines, line, column)
    if header is not None:
        return _missing_body_diagnostic(lines, header)
    opener = _never_closed(exc, lines, line, column)
    if opener is not None:
        open_line, open_column, char = opener
        closer = {"(": ")", "[": "]"}[char]
        return error(
            f"`{char}` is never closed",
            ir.Span(open_line, open_column, open_line, open_column + 1),
            f"add the `{closer}` that matches it; the statement runs on until line {line}",
        )
    span = ir.Span(line, column, line, column + _token_width(exc))
    if isinstance(exc, UnexpectedCharacters):
        char = lines[line - 1][column - 1] if line <= len(lines) else "?"
        if char.isdigit():
            return _long_number(lines[line - 1], line, column)
        if char in "\"'":
            return error(
                "this string is not closed, or has an escape stepc does not know",
                span,
                "a string ends on its line and may use only the escapes \\\\ \\\" \\' \\n \\t",
            )
        return error(f"unexpected character {char!r}", span, _expected_hint(exc.allowed))
    if isinstance(exc, UnexpectedToken):
        found = _describe_token(exc.token)
        return error(f"unexpected {found}", span, _expected_hint(exc.expected))
    return error("unexpected end of file", span, _expected_hint(getattr(exc, "expected", ())))


def _long_number(text: str, line: int, column: int) -> Diagnostic:
    """A digit the lexer refused: it starts a whole number longer than MAX_INT_DIGITS."""
    digits = len(text[column - 1 :]) - len(text[column - 1 :].lstrip("0123456789"))
    return error(
        f"integer literal too large: {digits:,} digits; stepc reads at most {MAX_INT_DIGITS}",
        ir.Span(line, column, line, column + digits),
        "a count or an index is far smaller; a large float is written with an exponent, "
        "such as 1.5e20",
    )


def _missing_body_diagnostic(lines: list[str], header: Statement) -> Diagnostic:
    text = lines[header.first - 1]
    start = len(_leading_space(text)) + 1
    return error(
        "this block has no body",
        ir.Span(header.first, start, header.first, len(text.rstrip()) + 1),
        "indent the statements of the block below its header; or remove the header",
    )


def _never_closed(exc, lines: list[str], line: int, column: int):
    """The bracket to blame when the error is really a bracket left open: one opened
    on an earlier line (or before the end of the input) and never matched."""
    opener = _unclosed_bracket(lines, line, column)
    if opener is None:
        return None
    token = getattr(exc, "token", None)
    ends_input = isinstance(exc, UnexpectedEOF) or (
        isinstance(token, Token) and token.type in ("_DEDENT", "$END")
    )
    if ends_input or (opener[0] < line and not closes_later(lines, opener[0], opener[1])):
        return opener
    return None


def _indented_line(lines: list[str], after: int) -> int:
    """An unexpected indent: the token sits at the end of the line before."""
    return next(
        (n for n in range(after + 1, len(lines) + 1) if lines[n - 1].strip()[:1] not in ("", "#")),
        after,
    )


def _indent_diagnostic(lines: list[str], after: int) -> Diagnostic:
    line = _indented_line(lines, after)
    text = lines[line - 1] if line <= len(lines) else ""
    width = len(text) - len(text.lstrip())
    return error(
        "unexpected indentation",
        ir.Span(line, 1, line, 1 + max(1, width)),
        "indent it like the line above; or, if the line above starts a block, end it with `:`",
    )


def _unclosed_bracket(lines: list[str], line: int, column: int) -> tuple[int, int, str] | None:
    """The innermost bracket still open just before (line, column), if any."""
    stack: list[tuple[int, int, str]] = []
    for number, text in enumerate(lines[:line], start=1):
        end = column - 1 if number == line else len(text)
        for index, char in code_positions(text[:end]):
            if char in "([":
                stack.append((number, index + 1, char))
            elif char in ")]" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _error_position(exc: Exception, lines: list[str]) -> tuple[int, int]:
    line, column = getattr(exc, "line", -1), getattr(exc, "column", -1)
    if isinstance(exc, UnexpectedEOF) or line < 1:
        line = max(1, len(lines))
        column = len(lines[line - 1]) + 1 if lines else 1
    return line, max(1, column)


def _token_width(exc: Exception) -> int:
    token = getattr(exc, "token", None)
    if isinstance(token, Token) and token.type not in ("_NL", "_INDENT", "_DEDENT", "$END"):
        return max(1, len(token.value.split("\n")[0]))
    return 1


def _describe_token(token: Token) -> str:
    if token.type in ("NAME", "NUMBER", "STRING"):
        return f"{_TOKEN_WORDS[token.type].split(' ', 1)[1]} `{token.value}`"
    if token.type == "_INDENT":
        return "indentation"
    if token.type in _TOKEN_WORDS:
        return _TOKEN_WORDS[token.type].removeprefix("the ")
    return f"`{token.value}`"


def _expected_hint(expected) -> str | None:
    # RECOVERED: the stand-in only recovery writes; never something to type.
    words = sorted({_terminal_words(name) for name in expected or () if name != "RECOVERED"})
    if not words:
        return None
    if len(words) == 1:
        return f"expected {words[0]}"
    return "expected one of: " + ", ".join(words)


@functools.cache
def _terminal_words(name: str) -> str:
    if name in _TOKEN_WORDS:
        return _TOKEN_WORDS[name]
    for terminal in _parser().terminals:
        if terminal.name == name and terminal.pattern.type == "str":
            return f"`{terminal.pattern.value}`"
        if terminal.name == name and terminal.pattern.value.endswith("\\b"):
            return f"`{terminal.pattern.value[:-2]}`"  # a keyword: /word\b/
    return name.lower()


def _dedent_diagnostic(message: str, lines: list[str]) -> Diagnostic:
    line = _first_bad_dedent(lines)
    width = len(lines[line - 1]) - len(lines[line - 1].lstrip()) if lines else 1
    span = ir.Span(line, 1, line, 1 + max(1, width))
    return error(
        "this line's indentation matches no enclosing block",
        span,
        "indent it exactly like the statement above or like its block's header",
    )


def _first_bad_dedent(lines: list[str]) -> int:
    """The first line whose indentation is not on the stack of open blocks."""
    stack = [0]
    for statement in logical_lines(lines):  # a bracket's later lines do not count
        number, text = statement.first, lines[statement.first - 1]
        indent = indent_width(_leading_space(text))
        if indent > stack[-1]:
            stack.append(indent)
        while indent < stack[-1]:
            stack.pop()
        if indent != stack[-1]:
            return number
    return max(1, len(lines))
