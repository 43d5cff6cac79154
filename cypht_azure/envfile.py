"""Parse and edit Cypht's ``.env`` text without breaking it (the disk side is ``envdisk``).

Cypht loads ``.env`` with symfony/dotenv and does not catch its ``FormatException``: a file it cannot
parse takes every page down. So this module reads with ``envsyntax``, a close Python port of
symfony/dotenv's ``Dotenv::parse()`` (6.4, checked against Debian's 5.4.53), refuses files that port
rejects, edits only the lines that assign the keys it is asked to change, and writes values in a form
that symfony/dotenv and python-dotenv both read back exactly. Reading, locking and replacing the file is ``envdisk``'s job.

Nothing here ever puts a value into an exception message or a repr: values may be secrets.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

from cypht_azure.envsyntax import (
    BOM,
    FIXES,
    KEY_RE,
    LINE,
    LINE_BREAK,
    PYTHON_DOTENV_VARIABLE,
    WS,
    Assignment,
    EnvFileError,
    Lexer,
)

__all__ = [
    "MAX_ENV_BYTES",
    "Assignment",
    "EnvDocument",
    "EnvFileError",
    "format_value",
    "parse",
]

MAX_ENV_BYTES = 1024 * 1024
"""Files larger than this are refused: a real Cypht .env is a few KiB."""

# --------------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------------


def _split_lines(text: str) -> list[str]:
    """Lines with their own terminators (\\r\\n, \\r or \\n, as symfony counts them)."""
    return LINE.findall(text)


def _detect_newline(text: str) -> str:
    first = LINE_BREAK.search(text)
    return "\r\n" if first is not None and first.group(0) == "\r\n" else "\n"


def _strip_terminator(line: str) -> tuple[str, str]:
    if line.endswith("\r\n"):
        return line[:-2], "\r\n"
    if line.endswith(("\n", "\r")):
        return line[:-1], line[-1]
    return line, ""


class EnvDocument:
    """A parsed .env: its exact text plus where each assignment stands."""

    def __init__(
        self,
        text: str,
        path: Path | None,
        assignments: list[Assignment],
        values: dict[str, str],
        environ: Mapping[str, str],
    ) -> None:
        self.text = text
        self.path = path
        self.newline = _detect_newline(text)
        self._assignments = tuple(assignments)
        self._values = dict(values)
        self._environ = environ

    def __repr__(self) -> str:
        return f"EnvDocument(path={self.path!r}, keys={sorted(self._values)!r})"

    def get(self, key: str) -> str | None:
        """The value symfony/dotenv would load for ``key`` (the last assignment wins)."""
        return self._values.get(key)

    def keys(self) -> set[str]:
        return set(self._values)

    def as_dict(self) -> dict[str, str]:
        """Every variable symfony/dotenv would load, with its value."""
        return dict(self._values)

    def assignments(self, key: str | None = None) -> list[Assignment]:
        """Every statement assigning ``key`` (all of them if ``key`` is None), in file order."""
        return [a for a in self._assignments if key is None or a.key == key]

    def render(self) -> str:
        return self.text

    def updated(
        self, updates: Mapping[str, str | None], *, block_comment: str | None = None
    ) -> EnvDocument:
        """A copy with ``updates`` applied: str sets the key, None removes every line assigning it.

        A key already present is changed where it stands, in every occurrence, keeping its indent,
        ``export`` prefix and trailing comment. Missing keys are appended, in the order given, after
        ``block_comment``. All values are validated before anything changes.
        """
        formatted = {key: _format_for(key, value, self.path) for key, value in updates.items()}
        lines = _split_lines(self.text)
        replaced: dict[int, str] = {}
        dropped: set[int] = set()
        appended: list[str] = []
        written: list[str] = []
        for key, value in updates.items():
            occurrences = self.assignments(key)
            if value is None:
                for a in occurrences:
                    dropped.update(range(a.line - 1, a.end_line))
                continue
            if occurrences and all(a.value == value for a in occurrences):
                continue
            written.append(key)
            if not occurrences:
                appended.append(key)
                continue
            for a in occurrences:
                replaced[a.line - 1] = _rewrite_assignment(lines, a, formatted[key] or "")
                dropped.update(range(a.line, a.end_line))
        kept = [replaced.get(i, line) for i, line in enumerate(lines) if i not in dropped or i in replaced]
        text = "".join(kept)
        if appended:
            text += self._append_block(text, [(k, formatted[k] or "") for k in appended], block_comment)
        if text == self.text:
            return self
        new = parse(text, self.path, environ=self._environ)
        _verify_readback(new, {k: updates[k] for k in written}, [k for k, v in updates.items() if v is None])
        return new

    def _append_block(self, text: str, items: list[tuple[str, str]], block_comment: str | None) -> str:
        nl = self.newline
        block = ""
        if text and not text.endswith(("\n", "\r")):
            block += nl  # otherwise the new line would be glued onto the last one
        if block_comment is not None:
            last = _split_lines(text)[-1:] if text else []
            if last and last[0].strip(WS):
                block += nl
            block += "".join(line + nl for line in _comment_lines(block_comment, self.path))
        return block + "".join(f"{key}={value}{nl}" for key, value in items)


def _rewrite_assignment(lines: list[str], a: Assignment, formatted: str) -> str:
    head = lines[a.line - 1][: a.value_col]
    last, terminator = _strip_terminator(lines[a.end_line - 1])
    comment = last[a.value_end_col :].lstrip(" \t")
    if not comment.startswith("#"):
        return head + formatted + terminator
    # Keep the whitespace before the comment (symfony counts it into the value region); a "#" only
    # starts a comment after whitespace, so there must be some.
    hash_at = len(last) - len(comment)
    bound = a.value_col if a.line == a.end_line else 0
    ws_at = hash_at
    while ws_at > bound and last[ws_at - 1] in " \t":
        ws_at -= 1
    return head + formatted + (last[ws_at:hash_at] or " ") + comment + terminator


def _comment_lines(block_comment: str, path: Path | None) -> list[str]:
    out = []
    for line in block_comment.split("\n"):
        if not line.isprintable():
            raise EnvFileError(
                "the block comment contains a control character.",
                path=path,
                fix="Pass a comment made of printable characters.",
            )
        out.append(line if line.startswith("#") else f"# {line}".rstrip())
    return out


def _verify_readback(doc: EnvDocument, written: Mapping[str, str | None], removed: list[str]) -> None:
    """Re-read the edited text with both readers before it can be written."""
    python_values = _python_dotenv_values(doc.text)
    for key, value in written.items():
        if doc.get(key) != value:
            raise EnvFileError(
                "after the edit, symfony/dotenv would not read back the new value "
                "(another line changes it, e.g. a ${" + key + ":=...} expansion).",
                path=doc.path,
                key=key,
                fix=f"Fix the lines that refer to {key} by hand, then run again.",
            )
        if python_values.get(key) != value:
            raise EnvFileError(
                "after the edit, python-dotenv would not read back the new value (another line is "
                "read differently by python-dotenv, e.g. an unbalanced quote).",
                path=doc.path,
                key=key,
                fix="Simplify the quoting of the other lines, then run again.",
            )
    for key in removed:
        if doc.get(key) is not None:
            raise EnvFileError(
                "cannot remove the key: it is still set by a ${" + key + ":=...} expansion.",
                path=doc.path,
                key=key,
                fix="Remove that expansion by hand.",
            )


def _python_dotenv_values(text: str) -> dict[str, str | None]:
    """python-dotenv's reading, without interpolation (values written here never contain ${...})."""
    from dotenv.parser import parse_stream  # local: only needed for the check

    values: dict[str, str | None] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is not None and not binding.error:
            values[binding.key] = binding.value
    return values


def parse(text: str, path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> EnvDocument:
    """Parse ``text`` as symfony/dotenv would, or raise EnvFileError with the line number.

    ``environ`` stands for the real environment ``$VAR`` expansions may read; by default none.
    """
    if text.startswith(BOM):
        raise EnvFileError(
            "symfony/dotenv (Cypht's loader) refuses files starting with a byte-order mark (BOM).",
            path=path,
            line=1,
            fix=FIXES["bom"],
        )
    env = dict(environ or {})
    lexer = Lexer(text, path, env)
    assignments = lexer.parse()
    return EnvDocument(text, path, assignments, lexer.values, env)


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


def format_value(value: str) -> str:
    """The quoted form of ``value`` that symfony/dotenv and python-dotenv both read back exactly.

    Single quotes whenever possible: symfony takes them literally. python-dotenv also decodes
    ``\\\\`` and ``\\'`` inside them, so values with a quote, a double backslash or a trailing
    backslash get double quotes with ``\\`` and ``"`` escaped instead. Anything neither form can carry
    is refused (see ``_unrepresentable``).
    """
    return _format_for(None, value, None) or ""


def _format_for(key: str | None, value: str | None, path: Path | None) -> str | None:
    if key is not None and not KEY_RE.match(key):
        raise EnvFileError(
            f"{key!r} is not a variable name symfony/dotenv accepts.",
            path=path,
            fix="Use letters, digits and _, starting with a letter.",
        )
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnvFileError(f"the value must be a string, not {type(value).__name__}.", path=path, key=key)
    problem = _unrepresentable(value)
    if problem is None:
        candidate = _quote(value)
        if _reads_back(candidate, value):
            return candidate
        problem = _double_quote_problem(value)
    raise EnvFileError(
        f"cannot write the value{f' of {key}' if key else ''}: {problem}.",
        path=path,
        key=key,
        fix="Use a value without it (Azure client secrets never contain it).",
    )


def _unrepresentable(value: str) -> str | None:
    if not all(c.isprintable() for c in value):
        return "it contains a newline or another control character"
    if PYTHON_DOTENV_VARIABLE.search(value):
        return "python-dotenv would expand its ${...} in any quoting"
    return None


def _double_quote_problem(value: str) -> str:
    """Why a value that needs double quotes (it has ' or \\\\ or ends in \\) cannot have them."""
    needs = "it contains a single quote or backslashes, so it needs double quotes, and "
    if re.search(r"\$[A-Za-z_({]", value):
        return needs + "symfony/dotenv expands $ inside double quotes (python-dotenv has no escape for it)"
    if re.search(r'\\[nr"]', value):
        return needs + 'symfony/dotenv reads a backslash before n, r or " as an escape there'
    return needs + "the two readers disagree on it"


def _quote(value: str) -> str:
    if not value:
        return ""  # `KEY=`, as in Cypht's .env.example
    if "'" not in value and "\\\\" not in value and not value.endswith("\\"):
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reads_back(formatted: str, value: str) -> bool:
    """Both readers, on a one-line file, read exactly ``value`` (empty environment)."""
    line = f"K={formatted}\n"
    try:
        symfony = parse(line).get("K")
    except EnvFileError:
        return False
    return symfony == value and _python_dotenv_values(line).get("K") == value
