"""stepc's own reading of a spec's keywords, strings, numbers and comments, which the
highlighters' tests (TextMate in ``test_textmate``, Pygments in ``test_highlight``) compare
their tokens with, character by character.

The tokens come from the parser stepc runs: the grammar's Lark LALR parser with its
contextual lexer and indenter, so a word is a keyword exactly where stepc reads one (`loss`
starts a loss item, and is a name inside a step). Comments are ignored tokens, and most of
them sit inside the line-break terminal `_NL` (`(/\\n[\\t \\f]*/ | COMMENT)+`); a lexer
callback sees both before the parser drops them. The keywords are the grammar's terminals
written `/word\\b/`, read from ``grammar/step.lark``, the source of truth.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from lark import Lark, Token
from stepc.parse.parser import StepIndenter, keyword_terminals
from stepc.resources import grammar_text

KEYWORD = "keyword"
STRING = "string"
NUMBER = "number"
COMMENT = "comment"
CATEGORIES = (KEYWORD, STRING, NUMBER, COMMENT)

_COMMENT_IN_TOKEN = re.compile(r"#[^\r\n]*")

# The context-dependent keywords, each where stepc reads it as one and where it reads
# the same word as a name, with the other shapes a highlighter must tell apart: item
# keywords as names at a step's statements and inside brackets, statement keywords in
# expressions, joining words (`over`, `as`, ...) outside their statement, numbers and
# `#` inside strings, keywords as parts of longer names.
CONTEXT_SPEC = """\
# Keywords as stepc reads them, in every context a highlighter must tell apart.
model Contexts(Functional):
    init(state_size: int = 3, optimizer_steps: int = 2)
    compile(second: Optimizer)
    jit_compile = False
    metric loss_tracker = Mean(name="loss # not a comment")
    metric metric = Mean(name='it\\'s \\"quoted\\"\\t\\n\\\\')
    loss loss = MeanSquaredError()
    optimizer optimizer = Adam(learning_rate=1e-3)
    state state: float[state_size] = zeros((state_size,))
    state count: int = 0

    shared(x, y, sample_weight?):
        model = self(x)  # `model`: a name here
        loss, train = model, 2.5e+2
        jit_compile = -.5 * loss + 1. + 3E2 + 0.25
        modelled = zeros_like(x)[..., 0:1:2]

    train:
        test = self(x, training=True)
        init = loss(y, test)
        updated = compile(init) + update(init)
        minimize init over self (clip_norm=1.0) using optimizer
        repeat optimizer_steps as step:
            for a, b in zip([x, x], [test, test]):
                predict = mean(a - b)
                state_value = state + predict
            assign self = 0.5 * self + 0.5 * self
        apply 0.5 * gradient(loss(y, self(x)), self) to self using second
        assign state = state_value
        update loss_tracker(init)
        update metric(init)
        return loss_tracker, metric, minimize_me=mean(
            over(init, using=1, shared=2),  # inside brackets no word is a keyword
            as_=3,
        )

    test(x, y):
        predict = self(x, training=False)
        update loss_tracker(loss(y, predict))

    predict(x):
        return test=self(x)
"""


@dataclass(frozen=True)
class Lexeme:
    """A keyword, string, number or comment: `line` and `column` 1-based, `end` exclusive
    (a lexeme never spans lines)."""

    category: str
    line: int
    column: int
    end: int
    text: str


def spec_lexemes(text: str) -> list[Lexeme]:
    """Every keyword, string, number and comment of `text`, as stepc's parser reads it
    (the text must parse)."""
    tokens = _Recorder.tokens_of(text if text.endswith("\n") else text + "\n")
    keyword_types = keyword_terminals().keys()
    lexemes: list[Lexeme] = []
    for token in tokens:
        if token.type in ("_NL", "COMMENT"):
            lexemes.extend(_comments(token))
        elif token.type in keyword_types:
            lexemes.append(_lexeme(KEYWORD, token))
        elif token.type in ("STRING", "NUMBER"):
            lexemes.append(_lexeme(token.type.lower(), token))
    return lexemes


def _lexeme(category: str, token: Token) -> Lexeme:
    return Lexeme(category, token.line, token.column, token.column + len(token), str(token))


def _comments(token: Token) -> Iterable[Lexeme]:
    """The comments inside a line-break token (or a comment token), where they are in
    the text: outside a string a `#` only ever starts a comment."""
    for offset, line_text in enumerate(str(token).split("\n")):
        start = token.column if offset == 0 else 1
        for match in _COMMENT_IN_TOKEN.finditer(line_text):
            column = start + match.start()
            yield Lexeme(COMMENT, token.line + offset, column, column + len(match[0]), match[0])


class _Recorder:
    """stepc's parser (its grammar, contextual lexer and indenter) with a lexer callback
    on every terminal, which keeps each token the lexer reads, ignored ones too."""

    recorded: list[Token] = []

    @classmethod
    def tokens_of(cls, text: str) -> list[Token]:
        cls.recorded = []
        cls.parser().parse(text)
        return cls.recorded

    @staticmethod
    def record(token: Token) -> Token:
        _Recorder.recorded.append(token)
        return token

    @classmethod
    @functools.cache
    def parser(cls) -> Lark:
        names = [t.name for t in Lark(grammar_text(), parser="lalr").terminals]
        return Lark(
            grammar_text(),
            parser="lalr",
            lexer="contextual",
            postlex=StepIndenter(),
            lexer_callbacks=dict.fromkeys(names, cls.record),
        )


def categories_by_character(lexemes: Iterable[Lexeme]) -> dict[tuple[int, int], str]:
    """(line, column) of each character of the lexemes to its category."""
    return {
        (lexeme.line, column): lexeme.category
        for lexeme in lexemes
        for column in range(lexeme.column, lexeme.end)
    }


def disagreements(
    text: str, expected: dict[tuple[int, int], str], found: dict[tuple[int, int], str]
) -> list[str]:
    """Each run of characters a highlighter read differently from stepc, as
    `line:column 'text' in 'the line': stepc=... highlighter=...` (the first 20)."""
    lines = text.split("\n")
    runs: list[list] = []  # [line, first column, last column, stepc's, the highlighter's]
    for line, column in sorted(expected.keys() | found.keys()):
        pair = (expected.get((line, column)), found.get((line, column)))
        if pair[0] == pair[1]:
            continue
        if runs and runs[-1][0] == line and runs[-1][2] == column - 1 and runs[-1][3:] == [*pair]:
            runs[-1][2] = column
        else:
            runs.append([line, column, column, *pair])
    return [
        f"{line}:{first} {lines[line - 1][first - 1 : last]!r} in {lines[line - 1].strip()!r}: "
        f"stepc={ours} highlighter={theirs}"
        for line, first, last, ours, theirs in runs[:20]
    ]
