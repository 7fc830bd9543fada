"""The Pygments lexer (`stepc.tools.highlight.StepLexer`): every shipped spec and
``CONTEXT_SPEC`` lex with no error token, and their keywords, strings, numbers and comments
are exactly stepc's own, character by character (``tests.support.lexemes``); its keywords
are the grammar's; pyproject.toml registers it with Pygments.

The rule for stepc's context-dependent keywords is the TextMate grammar's (see
``tests/test_textmate.py``). `True`, `False` and `None` are names to stepc and
`Keyword.Constant` to Pygments (constants to a reader): not counted as keywords.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Number, String
from stepc.parse.parser import keywords
from stepc.tools.highlight import KEYWORDS, StepLexer

from tests.support.lexemes import (
    COMMENT,
    CONTEXT_SPEC,
    KEYWORD,
    NUMBER,
    STRING,
    categories_by_character,
    disagreements,
    spec_lexemes,
)

REPO = Path(__file__).resolve().parent.parent
SPECS = {path.name: path for path in sorted((REPO / "specs").glob("*.step"))}
TOKEN_CATEGORIES = ((Comment, COMMENT), (String, STRING), (Number, NUMBER), (Keyword, KEYWORD))


def _text(name: str) -> str:
    return CONTEXT_SPEC if name == "contexts.step" else SPECS[name].read_text(encoding="utf-8")


def _category(token) -> str | None:
    if token in Keyword.Constant:
        return None
    return next((category for kind, category in TOKEN_CATEGORIES if token in kind), None)


def _pygments_categories(text: str) -> dict[tuple[int, int], str]:
    """(line, column) of each character Pygments gives a category to."""
    categories = {}
    line, column = 1, 1
    for _, token, value in StepLexer().get_tokens_unprocessed(text):
        for char in value:
            if (category := _category(token)) is not None and char != "\n":
                categories[line, column] = category
            line, column = (line + 1, 1) if char == "\n" else (line, column + 1)
    return categories


@pytest.mark.parametrize("name", [*SPECS, "contexts.step"])
def test_pygments_tokens_are_stepcs(name: str) -> None:
    """No error token, and each character's category is the one stepc's lexer gives."""
    text = _text(name)
    errors = [
        value for _, token, value in StepLexer().get_tokens_unprocessed(text) if token in Error
    ]
    assert not errors
    expected = categories_by_character(spec_lexemes(text))
    problems = disagreements(text, expected, _pygments_categories(text))
    assert not problems, "\n".join(problems)


def test_the_step_blocks_of_the_language_guide_lex_without_errors() -> None:
    text = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```step\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert blocks
    for block in blocks:
        tokens = StepLexer().get_tokens(block)
        assert not [value for token, value in tokens if token in Error], block


def test_pygments_keywords_are_the_grammars() -> None:
    assert keywords() == KEYWORDS


def test_a_bad_string_is_an_error_token_and_lexing_goes_on() -> None:
    tokens = list(StepLexer().get_tokens('x = "a\\q" + "open\nloss l = Mean()\n'))
    assert [value for token, value in tokens if token in Error] == ["\\q"]
    assert (Keyword.Declaration, "loss") in tokens


def test_the_lexer_is_registered_with_pygments() -> None:
    """The entry point pyproject.toml declares names this class (Pygments finds it by
    alias once stepc is installed)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    target = pyproject["project"]["entry-points"]["pygments.lexers"]["step"]
    module, _, attribute = target.partition(":")
    assert getattr(importlib.import_module(module), attribute) is StepLexer
    assert StepLexer.aliases == ["step"] and StepLexer.filenames == ["*.step"]
