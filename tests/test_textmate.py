"""The VS Code extension's TextMate grammar, tokenized by the real engine (vscode-textmate
on vscode-oniguruma, from npm, run by ``editors/vscode/test/tokenize.mjs``): on every
shipped spec and on ``CONTEXT_SPEC`` its keywords, strings, numbers and comments are
exactly stepc's own, character by character (``tests.support.lexemes``).

The rule the grammar follows for stepc's context-dependent keywords, and these tests
hold it to: a word is a keyword where stepc's lexer reads one. The grammar tells by the
shape of the line: an item keyword at a line's start followed by its item's syntax
(`loss NAME`, `init(`, `train:`); a statement keyword at a line's start; `over`, `using`,
`as`, `in` and `to` inside their statement; nothing inside brackets. (Its one known
miss, which no test spec holds: a step assigning a value named `jit_compile` from a
bare name, `jit_compile = x`, reads as the item.)

The node packages come from ``npm ci --prefix editors/vscode``; without node or them the
tests skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.lexemes import (
    COMMENT,
    CONTEXT_SPEC,
    KEYWORD,
    NUMBER,
    STRING,
    categories_by_character,
    disagreements,
    keyword_words,
    spec_lexemes,
)

REPO = Path(__file__).resolve().parent.parent
EXTENSION = REPO / "editors" / "vscode"
GRAMMAR = EXTENSION / "syntaxes" / "step.tmLanguage.json"
SPECS = sorted((REPO / "specs").glob("*.step"))
# A TextMate scope's category, by its prefix: the first of these in a token's scopes.
SCOPE_CATEGORIES = (
    ("comment.", COMMENT),
    ("string.", STRING),
    ("constant.numeric.", NUMBER),
    ("keyword.control.", KEYWORD),
    ("storage.type.", KEYWORD),
)
_KEYWORD_GROUP = re.compile(r"\((?:\?:)?([a-z_]+(?:\|[a-z_]+)*)\)|\\b([a-z_]+)\\b")


def _node_or_skip() -> str:
    node = shutil.which("node")
    installed = (EXTENSION / "node_modules" / "vscode-textmate").is_dir()
    if node and installed:
        return node
    missing = "node" if not node else "editors/vscode/node_modules (npm ci --prefix editors/vscode)"
    if os.environ.get("CI"):
        pytest.fail(f"the TextMate tests need {missing}")
    pytest.skip(f"the TextMate tests need {missing}")


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> dict[str, list[dict]]:
    """Each spec's name to its TextMate tokens: one node run for all of them."""
    node = _node_or_skip()
    context = tmp_path_factory.mktemp("textmate") / "contexts.step"
    context.write_text(CONTEXT_SPEC, encoding="utf-8")
    files = [*SPECS, context]
    script = EXTENSION / "test" / "tokenize.mjs"
    run = subprocess.run(
        [node, str(script), *map(str, files)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    by_file = json.loads(run.stdout)
    return {Path(name).name: by_file[str(name)] for name in files}


def _category(scopes: list[str]) -> str | None:
    for scope in reversed(scopes):  # the innermost scope decides (an escape in a string)
        for prefix, category in SCOPE_CATEGORIES:
            if scope.startswith(prefix):
                return category
    return None


def _textmate_categories(tokens: list[dict]) -> dict[tuple[int, int], str]:
    return {
        (token["line"], column): category
        for token in tokens
        if (category := _category(token["scopes"])) is not None
        for column in range(token["start"], token["end"])
    }


def _texts() -> dict[str, str]:
    texts = {path.name: path.read_text(encoding="utf-8") for path in SPECS}
    return {**texts, "contexts.step": CONTEXT_SPEC}


@pytest.mark.parametrize("name", [*(path.name for path in SPECS), "contexts.step"])
def test_textmate_tokens_are_stepcs(name: str, tokens) -> None:
    """Every character stepc reads as part of a keyword, string, number or comment has a
    TextMate scope of that category, and no other character has one."""
    text = _texts()[name]
    expected = categories_by_character(spec_lexemes(text))
    problems = disagreements(text, expected, _textmate_categories(tokens[name]))
    assert not problems, "\n".join(problems)


def test_the_context_spec_holds_every_keyword_and_category() -> None:
    """So that the comparison above sees each keyword and each category at least once."""
    lexemes = spec_lexemes(CONTEXT_SPEC)
    assert {lexeme.text for lexeme in lexemes if lexeme.category == KEYWORD} == keyword_words()
    assert {lexeme.category for lexeme in lexemes} == {KEYWORD, STRING, NUMBER, COMMENT}


def _keyword_rules(rule) -> list[tuple[str, list[str]]]:
    """(regex, scope names) of each rule in the grammar, recursively."""
    if isinstance(rule, list):
        return [found for item in rule for found in _keyword_rules(item)]
    if not isinstance(rule, dict):
        return []
    captures = [*rule.get("captures", {}).values(), *rule.get("beginCaptures", {}).values()]
    scopes = [rule.get("name", ""), *(capture["name"] for capture in captures)]
    found = [(rule[key], scopes) for key in ("match", "begin") if key in rule]
    for key in ("patterns", "repository"):
        value = rule.get(key)
        found += _keyword_rules(list(value.values()) if isinstance(value, dict) else value)
    return found


def test_textmate_keywords_are_the_grammars() -> None:
    """The words the TextMate grammar's keyword rules name are the keyword terminals of
    grammar/step.lark, no more and no fewer."""
    grammar = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    words = set()
    for regex, scopes in _keyword_rules(grammar):
        if any(_category([scope]) == KEYWORD for scope in scopes):
            for group, bounded in _KEYWORD_GROUP.findall(regex):
                words.update((group or bounded).split("|"))
    assert words == keyword_words()
