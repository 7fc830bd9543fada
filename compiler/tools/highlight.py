"""The Pygments lexer of `.step` specs (`StepLexer`, alias `step`), so that docs, notebooks
and `pygmentize` highlight them; pyproject.toml registers it as a `pygments.lexers` entry
point.

Owns how a highlighter reads stepc's context-dependent keywords, the same rule as the VS
Code extension's TextMate grammar (`editors/vscode/syntaxes/step.tmLanguage.json`): stepc's
lexer reads a word as a keyword only where the parser accepts one (`loss = mse(y, p)` in a
step assigns a name), and a highlighter tells by the line's shape. An item keyword is one
at a line's start when its item's syntax follows (`loss NAME`, `init(`, `train:`); a
statement keyword at a line's start; the joining words (`over`, `using`, `as`, `in`, `to`)
inside their own statement; no word inside brackets. The keyword words are
`grammar/step.lark`'s keyword terminals, which tests/test_highlight.py checks, with every
shipped spec lexed as stepc's own lexer reads it.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, default, include
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SPACE = r"[ \t\f]"
_LINE_START = rf"^({_SPACE}*)"

# Items of a model, by what follows their keyword.
OBJECT_ITEMS = ("metric", "loss", "optimizer")  # metric NAME = Class(...)
PARAMETER_ITEMS = ("init", "compile")  # init(name: type, ...)
STEP_KINDS = ("train", "test", "predict")  # train(x, y):   test:
# Statements of a step: those with joining words, and the rest.
JOINED_STATEMENTS = {
    "minimize": ("over", "using"),
    "apply": ("to", "using"),
    "repeat": ("as",),
    "for": ("in",),
}
PLAIN_STATEMENTS = ("update", "return", "assign")
KEYWORDS = frozenset(
    {"model", "state", "jit_compile", "shared"}
    | {*OBJECT_ITEMS, *PARAMETER_ITEMS, *STEP_KINDS, *PLAIN_STATEMENTS}
    | {word for statement, joined in JOINED_STATEMENTS.items() for word in (statement, *joined)}
)


def _alternatives(words) -> str:
    return "(" + "|".join(words) + ")"


def _item_rules() -> list:
    """A model's items: a keyword at the line's start, followed by its item's syntax."""
    keyword = Keyword.Declaration
    return [
        (
            rf"{_LINE_START}(model)({_SPACE}+)({NAME})",
            bygroups(Whitespace, keyword, Whitespace, Name.Class),
        ),
        (
            rf"{_LINE_START}{_alternatives(PARAMETER_ITEMS)}({_SPACE}*)(\()",
            bygroups(Whitespace, keyword, Whitespace, Punctuation),
            "parameters",
        ),
        (
            rf"{_LINE_START}{_alternatives((*OBJECT_ITEMS, 'state'))}({_SPACE}+)({NAME})",
            bygroups(Whitespace, keyword, Whitespace, Name.Variable),
        ),
        # A step may assign a value named jit_compile: the item is `jit_compile = NAME` alone.
        (
            rf"{_LINE_START}(jit_compile)({_SPACE}*)(=)({_SPACE}*)({NAME})(?={_SPACE}*(?:#.*)?$)",
            bygroups(Whitespace, keyword, Whitespace, Operator, Whitespace, Keyword.Constant),
        ),
        (
            rf"{_LINE_START}{_alternatives(STEP_KINDS)}(?={_SPACE}*[(:])",
            bygroups(Whitespace, keyword),
        ),
        (rf"{_LINE_START}(shared)(?={_SPACE}*\()", bygroups(Whitespace, keyword)),
    ]


def _statement_rules() -> list:
    """A step's statements: a keyword at the line's start; those with joining words
    enter a state of their own until the line ends."""
    joined = [
        (rf"{_LINE_START}({statement})\b", bygroups(Whitespace, Keyword), statement)
        for statement in JOINED_STATEMENTS
    ]
    plain = (rf"{_LINE_START}{_alternatives(PLAIN_STATEMENTS)}\b", bygroups(Whitespace, Keyword))
    return [*joined, plain]


def _joined_states() -> dict[str, list]:
    """A state per statement with joining words: they are keywords there only."""
    return {
        statement: [
            (rf"\b{_alternatives(words)}\b", Keyword),
            (r"\n", Whitespace, "#pop"),
            include("expression"),
            include("unbalanced"),
        ]
        for statement, words in JOINED_STATEMENTS.items()
    }


def _string_state(quote: str, token) -> list:
    return [
        (r"\\[\"'nt\\]", String.Escape),
        (r"\\.?", Error),  # stepc knows no other escape
        (rf"[^{quote}\\\n]+", token),
        (quote, token, "#pop"),
        default("#pop"),  # at the line's end: a string ends on its line
    ]


class StepLexer(RegexLexer):
    """stepc's `.step` training-step specs."""

    name = "Step spec"
    aliases = ["step"]
    filenames = ["*.step"]
    mimetypes = ["text/x-step"]
    url = "https://github.com/stepc/stepc"

    tokens = {
        "root": [
            *_item_rules(),
            *_statement_rules(),
            include("expression"),
            include("unbalanced"),
            (r"\n", Whitespace),
        ],
        "expression": [
            (r"#[^\n]*", Comment.Single),
            (r'"', String.Double, "double-quoted"),
            (r"'", String.Single, "single-quoted"),
            (r"\.\.\.", Punctuation),
            (r"(?<![\w.])(?:\d+\.\d*|\.\d+|\d+(?=[eE][+-]?\d))(?:[eE][+-]?\d+)?", Number.Float),
            (r"(?<![\w.])\d+", Number.Integer),
            (r"\(", Punctuation, "parentheses"),
            (r"\[", Punctuation, "brackets"),
            (rf"({NAME})({_SPACE}*)(?=\()", bygroups(Name.Function, Whitespace)),
            (r"\b(True|False|None)\b", Keyword.Constant),
            (r"\bself\b", Name.Builtin.Pseudo),
            (NAME, Name),
            (r"==|!=|<=|>=|\*\*|//|[-+*/%@<>|&~=]", Operator),
            (r"[,:?]", Punctuation),
            (r"\\\n", Text),  # a line continued
            (rf"{_SPACE}+", Whitespace),
        ],
        # A closing bracket with none open: the spec does not parse, but it lexes on.
        "unbalanced": [(r"[)\]]", Error)],
        # Inside brackets a line break does not end the statement, and no word is a keyword.
        "parentheses": [
            (rf"({NAME})({_SPACE}*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (r"\)", Punctuation, "#pop"),
            (r"\n", Whitespace),
            include("expression"),
            (r"\]", Error),
        ],
        "brackets": [
            (r"\]", Punctuation, "#pop"),
            (r"\n", Whitespace),
            include("expression"),
            (r"\)", Error),
        ],
        "parameters": [
            (
                rf"({NAME})({_SPACE}*)(:)({_SPACE}*)({NAME})",
                bygroups(Name.Variable, Whitespace, Punctuation, Whitespace, Name.Builtin),
            ),
            include("parentheses"),
        ],
        "double-quoted": _string_state('"', String.Double),
        "single-quoted": _string_state("'", String.Single),
        **_joined_states(),
    }
