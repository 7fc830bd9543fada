"""The VS Code extension (``editors/vscode/``). Its TextMate grammar, tokenized by the real
engine (vscode-textmate on vscode-oniguruma, from npm, run by
``editors/vscode/test/tokenize.mjs``): on every shipped spec and on ``CONTEXT_SPEC`` its
keywords, strings, numbers and comments are exactly stepc's own, character by character
(``tests.support.lexemes``).

The rule the grammar follows for stepc's context-dependent keywords, and these tests
hold it to: a word is a keyword where stepc's lexer reads one. The grammar tells by the
shape of the line: an item keyword at a line's start followed by its item's syntax
(`loss NAME`, `init(`, `train:`); a statement keyword at a line's start; `over`, `using`,
`as`, `in` and `to` inside their statement; nothing inside brackets. (Its one known
miss, which no test spec holds: a step assigning a value named `jit_compile` from a
bare name, `jit_compile = x`, reads as the item.)

And the extension itself: its manifest's language, grammar and setting, and what
``extension.js`` does when activated (``test/activate.cjs`` runs it against stand-ins for
the ``vscode`` API and the LanguageClient): it starts `<stepc.server.path> lsp` over stdio.

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
from stepc.parse.parser import keywords

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


def _node_or_skip(packages: bool = True) -> str:
    node = shutil.which("node")
    installed = not packages or (EXTENSION / "node_modules" / "vscode-textmate").is_dir()
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
    assert {lexeme.text for lexeme in lexemes if lexeme.category == KEYWORD} == keywords()
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
    assert words == keywords()


def _json(name: str) -> dict:
    return json.loads((EXTENSION / name).read_text(encoding="utf-8"))


def test_the_manifest_contributes_the_language_grammar_and_setting() -> None:
    manifest = _json("package.json")
    contributes = manifest["contributes"]
    (language,) = contributes["languages"]
    (grammar,) = contributes["grammars"]
    assert language["id"] == grammar["language"] == "step"
    assert language["extensions"] == [".step"]
    assert _json(language["configuration"])["comments"] == {"lineComment": "#"}
    assert _json(grammar["path"])["scopeName"] == grammar["scopeName"] == "source.step"
    setting = contributes["configuration"]["properties"]["stepc.server.path"]
    assert setting["default"] == "stepc"
    assert (EXTENSION / manifest["main"]).is_file()
    assert "onLanguage:step" in manifest["activationEvents"]


def _activation_events(*server_path: str) -> list[dict]:
    node = _node_or_skip(packages=False)
    script = EXTENSION / "test" / "activate.cjs"
    run = subprocess.run([node, str(script), *server_path], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_activating_starts_stepc_lsp_over_stdio_for_step_files() -> None:
    """The default server is `stepc lsp` (the LanguageClient adds `--stdio`, which `stepc
    lsp` takes); a changed setting restarts it with the new path; a server that cannot
    start is an error message naming the setting, not an exception."""
    events = _activation_events()
    clients = [event for event in events if event["event"] == "client"]
    assert [c["serverOptions"]["command"] for c in clients] == ["stepc", *["/elsewhere/stepc"] * 2]
    assert all(c["serverOptions"]["args"] == ["lsp"] for c in clients)
    assert all(c["serverOptions"]["transport"] == 0 for c in clients)  # TransportKind.stdio
    assert clients[0]["clientOptions"]["documentSelector"] == [{"language": "step"}]
    assert [e["event"] for e in events if e["event"] != "client"] == [
        *["start", "stop"] * 2,
        "error",
    ]
    assert "stepc.server.path" in events[-1]["message"]


def test_the_server_path_setting_names_the_command() -> None:
    events = _activation_events("/project/.venv/bin/stepc")
    assert events[0]["serverOptions"]["command"] == "/project/.venv/bin/stepc"
