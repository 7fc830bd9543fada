"""Stage 1: spec text to IR.

Owns reading the grammar, the LALR parser with its Python-style indenter, the
translation of Lark's tree into `stepc.ir` nodes (each with its span), and the
syntax diagnostics: positions, the expected tokens in words a user knows, and
recovery so that one run reports the syntax errors of every statement.
"""

from __future__ import annotations

import ast
import functools

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError, Indenter
from stepc import ir
from stepc.diagnostics import Diagnostic, error
from stepc.resources import grammar_text
from stepc.sources import code_positions

MAX_SYNTAX_ERRORS = 20


class _StepIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8


@functools.cache
def _parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        postlex=_StepIndenter(),
        # The IR is built while parsing: no parse tree, no position propagation
        # (spans come from tokens), which halves the time of a parse.
        transformer=_ToIR(),
        maybe_placeholders=True,
    )


_LAYOUT_TOKENS = frozenset({"_NL", "_INDENT", "_DEDENT"})


def parse(source: str, path: str) -> tuple[ir.Spec | None, list[Diagnostic]]:
    """Parse a spec; on syntax errors return None and one diagnostic per bad line.

    Recovery comments out the offending line and parses again. Errors at the
    end of a block or of the file after a first error are its consequences
    (a block left empty, a header left without its body) and are not reported.
    """
    lines = source.split("\n")
    diagnostics: list[Diagnostic] = []
    while len(diagnostics) < MAX_SYNTAX_ERRORS:
        try:
            models = _parser().parse("\n".join(lines) + "\n")
        except (UnexpectedInput, DedentError) as exc:
            if diagnostics and _is_follow_on(exc):
                break
            diag = _syntax_diagnostic(exc, lines)
            diagnostics.append(diag)
            if not _blank_line(lines, diag.span.line):
                break
            continue
        if diagnostics:
            return None, diagnostics
        return ir.Spec(path, models), []
    return None, diagnostics


def _is_follow_on(exc: Exception) -> bool:
    if isinstance(exc, UnexpectedEOF):
        return True
    token = getattr(exc, "token", None)
    return isinstance(token, Token) and token.type in ("_DEDENT", "_INDENT", "$END")


def _blank_line(lines: list[str], line: int) -> bool:
    """Recover by commenting out the bad line; False if nothing is left to skip."""
    index = line - 1
    if not 0 <= index < len(lines) or lines[index].strip() in ("", "#"):
        return False
    indent = len(lines[index]) - len(lines[index].lstrip())
    lines[index] = lines[index][:indent] + "#"
    return True


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
    "MUL_OP": "`*`, `/` or `//`",
    "OPTIONAL": "`?`",
}


def _syntax_diagnostic(exc: Exception, lines: list[str]) -> Diagnostic:
    if isinstance(exc, DedentError):
        return _dedent_diagnostic(str(exc), lines)
    line, column = _error_position(exc, lines)
    token = getattr(exc, "token", None)
    ends_input = isinstance(exc, UnexpectedEOF) or (
        isinstance(token, Token) and token.type in ("_DEDENT", "$END")
    )
    if isinstance(token, Token) and token.type == "_INDENT":
        return _indent_diagnostic(lines, line)
    opener = _unclosed_bracket(lines, line, column)
    if opener is not None and (opener[0] < line or ends_input):
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


def _indent_diagnostic(lines: list[str], after: int) -> Diagnostic:
    """An unexpected indent: the token sits at the end of the line before."""
    line = next(
        (n for n in range(after + 1, len(lines) + 1) if lines[n - 1].strip()[:1] not in ("", "#")),
        after,
    )
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
    words = sorted({_terminal_words(name) for name in expected or ()})
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
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(text.expandtabs(8)) - len(text.expandtabs(8).lstrip())
        if indent > stack[-1]:
            stack.append(indent)
        while indent < stack[-1]:
            stack.pop()
        if indent != stack[-1]:
            return number
    return max(1, len(lines))


# ---------------------------------------------------------------- tree to IR


def _start(node) -> tuple[int, int]:
    if isinstance(node, ir.Span):
        return node.line, node.column
    if isinstance(node, Token):
        return node.line, node.column
    if isinstance(node, tuple):  # assign targets, a gradient target
        return _start(node[0])
    return node.span.line, node.span.column


def _end(node) -> tuple[int, int]:
    if isinstance(node, ir.Span):
        return node.end_line, node.end_column
    if isinstance(node, Token):
        return node.end_line, node.end_column
    if isinstance(node, tuple):
        return _end(node[-1])
    return node.span.end_line, node.span.end_column


def _cover(first, last) -> ir.Span:
    """From the start of `first` to the end of `last` (tokens or IR nodes)."""
    return ir.Span(*_start(first), *_end(last))


def _token_span(token: Token) -> ir.Span:
    return ir.Span(token.line, token.column, token.end_line, token.end_column)


def _name(token: Token) -> ir.Name:
    return ir.Name(str(token), _token_span(token))


def _content(children) -> list:
    """Children without punctuation and layout tokens (kept by `!` rules for spans)."""
    return [c for c in children if c is not None and not _is_punctuation(c)]


def _is_punctuation(child) -> bool:
    return isinstance(child, Token) and child.type not in ("NAME", "NUMBER", "STRING")


def _spanned(children) -> list:
    """Children that take space: no placeholders, no line breaks or indentation."""
    return [c for c in children if c is not None and not _is_layout(c)]


def _is_layout(child) -> bool:
    return isinstance(child, Token) and child.type in _LAYOUT_TOKENS


def _clips(targets) -> tuple[tuple[ir.Clip, ...], tuple[ir.Keyword, ...]]:
    """Each target's `(clip_...=value)`: one keyword makes a clip; the rest is
    kept for the checker to report (positional options, several clips)."""
    clips: list[ir.Clip] = []
    bad: list[ir.Keyword] = []
    for name, options, span in targets:
        if options is None:
            continue
        args, keywords = options
        bad += [ir.Keyword("", a, a.span) for a in args] + list(keywords[1:])
        if keywords:
            clips.append(ir.Clip(name, keywords[0].name, keywords[0].value, span))
        elif not args:
            bad.append(ir.Keyword("", ir.TupleExpr((), span), span))
    return tuple(clips), tuple(bad)


def _split_arguments(items) -> tuple[tuple, tuple]:
    args = tuple(i for i in items if i is not None and not isinstance(i, ir.Keyword))
    keywords = tuple(i for i in items if isinstance(i, ir.Keyword))
    return args, keywords


class _ToIR(Transformer):
    """Builds IR nodes bottom-up while the LALR parser reduces (no parse tree
    is built). Spans come from the tokens: rules marked `!` in the grammar keep
    their brackets so a call's span ends at its `)`."""

    # -- expressions
    def name(self, children):
        return _name(children[0])

    def number(self, children):
        text = str(children[0])
        is_int = not any(c in text for c in ".eE")
        return ir.Number(text, is_int, _token_span(children[0]))

    def string(self, children):
        # The grammar admits only simple escapes, so literal_eval is exact here.
        return ir.String(ast.literal_eval(str(children[0])), _token_span(children[0]))

    def binary(self, children):
        left, op, right = children
        return ir.BinaryOp(str(op), left, right, _cover(left, right))

    def power(self, children):
        return ir.BinaryOp("**", children[0], children[1], _cover(children[0], children[1]))

    def negate(self, children):
        return ir.Negate(children[1], _cover(children[0], children[1]))

    def atom(self, children):  # "(" expr ")": the expression itself
        return children[1]

    def call(self, children):
        func, _, (args, keywords), close = children
        return ir.Call(_name(func), args, keywords, _cover(func, close))

    def subscript(self, children):
        value, _, index, close = children
        return ir.Subscript(value, index, _cover(value, close))

    def slice(self, children):
        start, _, stop = children
        spanned = _spanned(children)
        return ir.Slice(start, stop, _cover(spanned[0], spanned[-1]))

    def tuple(self, children):
        return ir.TupleExpr(tuple(_content(children)), _cover(children[0], children[-1]))

    def list(self, children):
        return ir.ListExpr(tuple(_content(children)), _cover(children[0], children[-1]))

    def keyword(self, children):
        return ir.Keyword(str(children[0]), children[1], _cover(children[0], children[1]))

    def arguments(self, children):
        return _split_arguments(children)

    # -- statements
    def assign_targets(self, children):
        return tuple(_name(t) for t in children)

    def assign(self, children):
        return ir.Assign(children[0], children[1], _cover(children[0], children[1]))

    def gradient_targets(self, children):
        return tuple(children)

    def gradient_target(self, children):
        spanned = _spanned(children)
        options = children[2] if len(spanned) > 1 else None
        return _name(children[0]), options, _cover(spanned[0], spanned[-1])

    def optimizer(self, children):
        return _name(children[0])

    def minimize(self, children):
        keyword, loss, targets, optimizer = children
        clips, bad = _clips(targets)
        names = tuple(name for name, _, _ in targets)
        span = _cover(keyword, optimizer or targets[-1][2])
        return ir.Minimize(loss, names, optimizer, span, clips, bad)

    def repeat(self, children):
        keyword, count, *body = children
        return ir.Repeat(count, tuple(body), _cover(keyword, body[-1]))

    def assign_weights(self, children):
        keyword, target, value = children
        return ir.AssignWeights(_name(target), value, _cover(keyword, value))

    def update(self, children):
        spanned = _spanned(children)
        keyword, metric, _, (args, keywords), close = spanned
        return ir.Update(_name(metric), args, keywords, _cover(keyword, close))

    def return_name(self, children):
        return ir.ReturnItem(_name(children[0]), None, _token_span(children[0]))

    def return_named(self, children):
        item = ir.ReturnItem(_name(children[0]), children[1], _cover(children[0], children[1]))
        return item

    def return_stmt(self, children):
        keyword, *items = children
        return ir.Return(tuple(items), _cover(keyword, items[-1]))

    # -- declarations
    def data_param(self, children):
        name, optional = children
        return ir.DataParam(_name(name), optional is not None, _cover(name, optional or name))

    def data_params(self, children):
        return tuple(children)

    def step(self, children):
        kind, data, *body = children
        return ir.Step(ir.StepKind(str(kind)), data, tuple(body), _cover(kind, body[-1]))

    def param(self, children):
        name, type_name = children
        return ir.Param(_name(name), _name(type_name), _cover(name, type_name))

    def params(self, children):
        return tuple(c for c in children if c is not None)

    def _declaration(self, children):
        spanned = _spanned(children)
        return spanned[2], _cover(spanned[0], spanned[-1])

    def init_decl(self, children):
        return ("init", *self._declaration(children))

    def compile_decl(self, children):
        return ("compile", *self._declaration(children))

    def _object_decl(self, children):
        spanned = _spanned(children)
        keyword, name, _, class_name, _, (args, keywords), close = spanned
        span = _cover(keyword, close)
        return ir.ObjectDecl(_name(name), _name(class_name), args, keywords, span)

    def metric_decl(self, children):
        return ("metric", self._object_decl(children))

    def loss_decl(self, children):
        return ("loss", self._object_decl(children))

    def jit_decl(self, children):
        keyword, value = children
        return ("jit_compile", _name(value), _cover(keyword, value))

    def base(self, children):
        return _name(children[0])

    def model(self, children):
        keyword, name, base, *items = children
        return _build_model(_name(name), base, items, _cover(keyword, _item_end(items[-1])))

    def start(self, children):
        return tuple(children)


def _item_end(item):
    """The node a model item ends with: a step, or the span of a declaration."""
    if isinstance(item, ir.Step):
        return item
    return item[-1] if item[0] in ("init", "compile") else item[1]


def _build_model(name: ir.Name, base, items: list, span: ir.Span) -> ir.Model:
    """Sorts a model's items by kind; the checker reports duplicates and order."""
    fields: dict = dict.fromkeys(("init", "compile", "jit_compile"))
    fields.update(dict.fromkeys(("init_span", "compile_span", "jit_compile_span")))
    metrics, losses, steps, repeated = [], [], [], []
    for item in items:
        if isinstance(item, ir.Step):
            steps.append(item)
        elif item[0] in ("metric", "loss"):
            (metrics if item[0] == "metric" else losses).append(item[1])
        elif fields[item[0]] is None:
            fields[item[0]], fields[item[0] + "_span"] = item[1], item[2]
        else:
            repeated.append(item[2])
    return ir.Model(
        name,
        base,
        fields["init"],
        fields["compile"],
        tuple(metrics),
        tuple(losses),
        tuple(steps),
        span,
        fields["init_span"],
        fields["compile_span"],
        tuple(repeated),
        fields["jit_compile"],
    )
