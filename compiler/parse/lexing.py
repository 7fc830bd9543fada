"""The contextual lexer's scanners, compiled only for the parser states that need it.

Owns one cost of a cold start. Lark's contextual lexer scans each parser state's
tokens with one regular expression, the alternation of every terminal the state
accepts, compiled the first time the state is reached: a spec as small as the GAN
reaches some thirty states, and compiling their alternations took about 25 ms of a
fresh `stepc compile` (a parse of the GAN itself takes 2 ms). Here a state's first
`UNION_AFTER` tokens are matched one terminal at a time instead, in the order of
the alternation, with each terminal's own expression (one compile per terminal,
shared by all states); a state reached more often compiles its alternation then,
so a large spec still scans at Lark's speed.

Both ways give the same token: a match of an alternation at a position is the
first alternative that matches there, with that alternative's own match.
Plugged into Lark through its `_plugins` option (`ContextualLexer`), with the
classes of the pinned Lark version (pyproject.toml).
"""

from __future__ import annotations

from lark.lexer import BasicLexer, CallChain, ContextualLexer, Scanner, _create_unless

# Tokens a state scans one terminal at a time before it compiles its alternation:
# about where the slower scanning has cost what the compile costs.
UNION_AFTER = 32


class _DeferredScanner(Scanner):
    """Lark's scanner, whose alternation is compiled after `UNION_AFTER` matches."""

    def __init__(self, terminals, g_regex_flags, re_, use_bytes):
        # Not Scanner.__init__: it compiles the alternation at once.
        self.terminals = terminals
        self.g_regex_flags = g_regex_flags
        self.re_ = re_
        self.use_bytes = use_bytes
        self.allowed_types = {t.name for t in terminals}
        self._mres = None
        self._matches_left = UNION_AFTER
        self._each = [
            (terminal.name, re_.compile(terminal.pattern.to_regexp(), g_regex_flags))
            for terminal in terminals
        ]

    def match(self, text, pos):
        if self._mres is None:
            if self._matches_left:
                self._matches_left -= 1
                return self._match_each(text, pos)
            self._mres = self._build_mres(self.terminals, len(self.terminals))
        return super().match(text, pos)

    def _match_each(self, text, pos):
        for name, expression in self._each:
            found = expression.match(text.text, pos, text.end)
            if found:
                return found.group(0), name
        return None

    def fullmatch(self, text: str):
        if self._mres is None:
            self._mres = self._build_mres(self.terminals, len(self.terminals))
        return super().fullmatch(text)


class _DeferredBasicLexer(BasicLexer):
    def _build_scanner(self) -> Scanner:
        """Lark's `BasicLexer._build_scanner`, with the deferred scanner."""
        terminals, self.callback = _create_unless(
            self.terminals, self.g_regex_flags, self.re, self.use_bytes
        )
        for type_, callback in self.user_callbacks.items():
            if type_ in self.callback:  # a keyword's callback is already there
                self.callback[type_] = CallChain(
                    self.callback[type_], callback, lambda t, type_=type_: t.type == type_
                )
            else:
                self.callback[type_] = callback
        return _DeferredScanner(terminals, self.g_regex_flags, self.re, self.use_bytes)


class DeferredContextualLexer(ContextualLexer):
    """Lark's contextual lexer with the deferred scanners (passed as a Lark plugin)."""

    BasicLexer = _DeferredBasicLexer
