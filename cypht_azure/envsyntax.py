"""symfony/dotenv's reading rules, ported: the lexer behind :func:`cypht_azure.envfile.parse`.

A close Python port of symfony/dotenv's ``Dotenv::parse()`` and its helpers (6.4, checked against
Debian's 5.4.53): what Cypht's loader accepts, what it refuses (with the line, the problem and the
fix), and where each assignment's value sits in the text so that an edit touches nothing else.

Nothing here ever puts a value into an exception message or a repr: values may be secrets.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BOM = "\ufeff"
# symfony's VARNAME_REGEX is (?i:_?[A-Z][A-Z0-9_]*+). Spelled out in ASCII: Python's IGNORECASE
# would also let [A-Z] match a few non-ASCII letters (dotless i, long s, the Kelvin sign).
_NAME = r"_?[A-Za-z][A-Za-z0-9_]*"
KEY_RE = re.compile(_NAME + r"\Z")
_VARNAME_AT = re.compile(r"(export[ \t]+)?(" + _NAME + r")")
_EMPTY_VALUE_AT = re.compile(r"[ \t]*(?:#.*)?$", re.MULTILINE)
# PCRE's \s without /u: ASCII whitespace including vertical tab.
WS = " \t\n\r\x0b\x0c"
_HAS_WS = re.compile(r"[ \t\n\r\x0b\x0c]")
# symfony 6.4 (the version Cypht pins) requires a non-empty default ([^}]++); 5.4 allowed an empty one.
_VARIABLE = re.compile(
    r"(?<!\\)(?P<backslashes>\\*)\$(?!\()(?P<opening_brace>\{)?(?P<name>" + _NAME + r")?"
    r"(?P<default_value>:[-=][^}]+)?(?P<closing_brace>\})?"
)
LINE_BREAK = re.compile(r"\r\n|\r|\n")
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
# python-dotenv expands ${NAME} and ${NAME:-default} in every value, whatever the quoting.
PYTHON_DOTENV_VARIABLE = re.compile(r"\$\{[^}:]*(?::-[^}]*)?\}")


class EnvFileError(Exception):
    """A .env problem: says where (path, line, key), what is wrong and how to fix it. Never a value."""

    def __init__(
        self,
        problem: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(str(self))

    @property
    def message(self) -> str:
        where = str(self.path) if self.path is not None else ".env"
        if self.line is not None:
            where += f", line {self.line}"
        return f"{where}: {self.problem}"

    @property
    def hint(self) -> str | None:
        return self.fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\nFix: {self.fix}"


@dataclass(frozen=True)
class Assignment:
    """One ``KEY=value`` statement as symfony/dotenv reads it.

    ``line``/``end_line`` are 1-based and inclusive (a quoted value may span lines); every line of the
    span belongs to this assignment alone. ``value_col`` is where the value starts in the first line,
    ``value_end_col`` where it stops in the last line (a trailing ``# comment`` may follow).
    """

    key: str
    value: str = field(repr=False)
    line: int
    end_line: int
    export: bool
    value_col: int
    value_end_col: int


# --------------------------------------------------------------------------------------------------
# The symfony/dotenv lexer, ported from Dotenv::parse() and its helpers.
# --------------------------------------------------------------------------------------------------

FIXES = {
    "name": "Variable names are letters, digits and _ and start with a letter (or _ and a letter); "
    "correct the line or comment it out with #.",
    "unset": "symfony/dotenv cannot unset a variable: write NAME= (empty) or delete the line.",
    "equals": "Write NAME=value, or comment the line out with #.",
    "space_name": "Remove the spaces around =: write NAME=value.",
    "space_value": "Remove the spaces after =: write NAME=value (quote the value if it has spaces).",
    "quote": "Add the missing closing quote.",
    "spaces": "Put the value in single quotes: NAME='value with spaces'.",
    "paren": "Close the parenthesis, or escape the $ as \\$, or use single quotes.",
    "command": "Cypht does not install symfony/process, so $(...) fails at load time: "
    "escape it as \\$(...) or use single quotes.",
    "brace": "Close the brace (${NAME}), escape the $ as \\$, or use single quotes.",
    "default": "Remove that character from the default value.",
    "bom": "Save the file as UTF-8 without a byte-order mark.",
}


class Lexer:
    """State of one parse, mirroring the PHP class's private fields."""

    def __init__(self, text: str, path: Path | None, environ: Mapping[str, str]) -> None:
        self.data = text.replace("\r\n", "\n").replace("\r", "\n")
        self.path = path
        self.environ = environ
        self.cursor = 0
        self.end = len(self.data)
        self.values: dict[str, str] = {}
        self.value_end = 0
        # symfony's own line counter is not advanced inside quoted values, so its line numbers drift
        # after a multi-line value; positions here are computed from offsets instead.
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", self.data)]

    # -- positions and errors --

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    def col_of(self, offset: int) -> int:
        return offset - self.line_starts[self.line_of(offset) - 1]

    def error(self, problem: str, fix_key: str, *, at: int | None = None, key: str | None = None) -> EnvFileError:
        offset = self.cursor if at is None else at
        line = self.line_of(min(offset, max(self.end - 1, 0)))
        return EnvFileError(
            f"symfony/dotenv (Cypht's loader) would reject this file: {problem}.",
            path=self.path,
            line=line,
            key=key,
            fix=FIXES[fix_key],
        )

    def char(self, offset: int) -> str:
        """PHP's $data[$i]: an out-of-range offset reads as ''."""
        return self.data[offset] if 0 <= offset < self.end else ""

    # -- Dotenv::parse() --

    def parse(self) -> list[Assignment]:
        assignments: list[Assignment] = []
        self.skip_empty_lines()
        while self.cursor < self.end:
            start = self.cursor
            name, export = self.lex_varname()
            value_start = self.cursor
            if self.cursor < self.end:
                value = self.lex_value(name)
            else:  # "NAME=" at the very end of the file
                value, self.value_end = "", self.cursor
            self.values[name] = value
            assignments.append(
                Assignment(
                    key=name,
                    value=value,
                    line=self.line_of(start),
                    end_line=self.line_of(self.value_end),
                    export=export,
                    value_col=self.col_of(value_start),
                    value_end_col=self.col_of(self.value_end),
                )
            )
        return assignments

    def lex_varname(self) -> tuple[str, bool]:
        match = _VARNAME_AT.match(self.data, self.cursor)
        if match is None:
            raise self.error("invalid character in variable name", "name")
        self.cursor = match.end()
        name, export = match.group(2), match.group(1) is not None
        nxt = self.char(self.cursor)
        if nxt in ("", "\n", "#"):
            if export:
                raise self.error("unable to unset an environment variable", "unset", key=name)
            raise self.error("missing = in the variable declaration", "equals", key=name)
        if nxt in (" ", "\t"):
            raise self.error("whitespace after the variable name", "space_name", key=name)
        if nxt != "=":
            raise self.error("missing = in the variable declaration", "equals", key=name)
        self.cursor += 1
        return name, export

    def lex_value(self, name: str) -> str:
        empty = _EMPTY_VALUE_AT.match(self.data, self.cursor)
        if empty is not None:
            self.value_end = self.cursor
            self.cursor = empty.end()
            self.skip_empty_lines()
            return ""
        if self.char(self.cursor) in (" ", "\t"):
            raise self.error("whitespace before the value", "space_value", key=name)
        value = ""
        while True:
            c = self.char(self.cursor)
            if c == "'":
                value += self.lex_single_quoted(name)
            elif c == '"':
                value += self.lex_double_quoted(name)
            else:
                value += self.lex_unquoted(name)
                if self.char(self.cursor) == "#":
                    break
            if not (self.cursor < self.end and self.data[self.cursor] != "\n"):
                break
        self.value_end = self.cursor
        self.skip_empty_lines()
        return value

    def lex_single_quoted(self, name: str) -> str:
        opening = self.cursor
        closing = self.data.find("'", opening + 1)
        if closing == -1:
            raise self.error("missing quote to end the value", "quote", at=opening, key=name)
        self.cursor = closing + 1
        return self.data[opening + 1 : closing]

    def lex_double_quoted(self, name: str) -> str:
        opening = self.cursor
        self.cursor += 1
        if self.cursor == self.end:
            raise self.error("missing quote to end the value", "quote", at=opening, key=name)
        raw = ""
        while self.data[self.cursor] != '"' or (
            self.char(self.cursor - 1) == "\\" and self.char(self.cursor - 2) != "\\"
        ):
            raw += self.data[self.cursor]
            self.cursor += 1
            if self.cursor == self.end:
                raise self.error("missing quote to end the value", "quote", at=opening, key=name)
        self.cursor += 1
        # str_replace with arrays: each pair in turn over the whole string.
        raw = raw.replace('\\"', '"').replace("\\r", "\r").replace("\\n", "\n")
        resolved = self.resolve_variables(self.resolve_commands(raw, name), name)
        return resolved.replace("\\\\", "\\")

    def lex_unquoted(self, name: str) -> str:
        raw = ""
        prev = self.data[self.cursor - 1]
        while (
            self.cursor < self.end
            and self.data[self.cursor] not in ("\n", '"', "'")
            and not (prev in (" ", "\t") and self.data[self.cursor] == "#")
        ):
            if self.data[self.cursor] == "\\" and self.char(self.cursor + 1) in ('"', "'"):
                self.cursor += 1
            prev = self.data[self.cursor]
            raw += prev
            if prev == "$" and self.char(self.cursor + 1) == "(":
                self.cursor += 1
                raw += "(" + self.lex_nested_expression(name) + ")"
            self.cursor += 1
        raw = raw.rstrip(" \t\n\r\0\x0b")
        resolved = self.resolve_variables(self.resolve_commands(raw, name), name)
        resolved = resolved.replace("\\\\", "\\")
        if resolved == raw and _HAS_WS.search(raw):
            raise self.error("a value containing spaces must be surrounded by quotes", "spaces", key=name)
        return resolved

    def lex_nested_expression(self, name: str) -> str:
        # symfony loops forever (reading past the end) on "$(" at the very end of a file; that is
        # refused here like any other unclosed parenthesis.
        self.cursor += 1
        value = ""
        while True:
            c = self.char(self.cursor)
            if c == "":
                raise self.error("missing closing parenthesis", "paren", key=name)
            if c in ("\n", ")"):
                break
            value += c
            if c == "(":
                value += self.lex_nested_expression(name) + ")"
            self.cursor += 1
            if self.cursor == self.end:
                raise self.error("missing closing parenthesis", "paren", key=name)
        if self.data[self.cursor] == "\n":
            raise self.error("missing closing parenthesis", "paren", key=name)
        return value

    def skip_empty_lines(self) -> None:
        while True:
            while self.cursor < self.end and self.data[self.cursor] in WS:
                self.cursor += 1
            if self.char(self.cursor) != "#":
                return
            newline = self.data.find("\n", self.cursor)
            self.cursor = self.end if newline == -1 else newline

    # -- Dotenv::resolveCommands() / resolveVariables() --

    def resolve_commands(self, value: str, name: str) -> str:
        """Unescaped $(cmd) needs symfony/process, which Cypht lacks: refused. \\$(cmd) loses the \\."""
        if "$" not in value:
            return value
        out: list[str] = []
        i = 0
        while i < len(value):
            escaped = value.startswith("\\$(", i)
            start = i + 1 if escaped else i
            if value.startswith("$(", start):
                end = _balanced_group_end(value, start + 1)
                if end is not None:
                    if not escaped:
                        raise self.error("command substitution $(...) in the value", "command", key=name)
                    out.append(value[start:end])
                    i = end
                    continue
            out.append(value[i])
            i += 1
        return "".join(out)

    def resolve_variables(self, value: str, name: str) -> str:
        if "$" not in value:
            return value
        return _VARIABLE.sub(lambda m: self.expand(m, name), value)

    def expand(self, match: re.Match[str], key: str) -> str:
        backslashes = match.group("backslashes")
        if len(backslashes) % 2 == 1:
            return match.group(0)[1:]
        # PHP leaves unmatched groups out of $matches only when no later group matched.
        name_is_set = match.lastindex is not None and match.lastindex >= _VARIABLE.groupindex["name"]
        if not name_is_set:
            return match.group(0)
        if match.group("opening_brace") and match.group("closing_brace") is None:
            raise self.error("unclosed brace in a variable expansion", "brace", key=key)
        name = match.group("name") or ""
        value = self.lookup(name)
        default = match.group("default_value") or ""
        if value == "" and default:
            for char in default:
                if char in "'\"{$":
                    raise self.error(
                        f'unsupported character "{char}" in the default value of "${name}"', "default", key=key
                    )
            value = default[2:]
            if default[1] == "=":
                self.values[name] = value
        if not match.group("opening_brace") and match.group("closing_brace"):
            value += "}"
        return backslashes + value

    def lookup(self, name: str) -> str:
        # As php-cli sees it: the real environment is in $_SERVER (skipped for HTTP_*), $_ENV is empty.
        if name in self.environ and not name.startswith("HTTP_"):
            return self.environ[name]
        if name in self.values:
            return self.values[name]
        return self.environ.get(name, "")


def _balanced_group_end(text: str, start: int) -> int | None:
    """End of the PCRE group \\((?:[^()]|(?R))+\\) starting at text[start] == '(', or None."""
    i = start + 1
    items = 0
    while i < len(text):
        c = text[i]
        if c == ")":
            return i + 1 if items else None
        if c == "(":
            inner = _balanced_group_end(text, i)
            if inner is None:
                return None
            i = inner
        else:
            i += 1
        items += 1
    return None
