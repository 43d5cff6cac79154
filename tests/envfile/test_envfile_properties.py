"""Property-based tests: any generated file, any generated update."""

from __future__ import annotations

import io
import re

import dotenv
from envfile_gen import GeneratedFile, files, tricky_values, updates, values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cypht_azure.envfile import EnvDocument, EnvFileError, format_value, parse

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def owned_lines(doc: EnvDocument, keys: set[str]) -> set[int]:
    return {i for a in doc.assignments() if a.key in keys for i in range(a.line - 1, a.end_line)}


def representable(updates_: dict[str, str | None]) -> bool:
    try:
        for value in updates_.values():
            if value is not None:
                format_value(value)
    except EnvFileError:
        return False
    return True


@SETTINGS
@given(generated=files, changes=updates)
def test_update_touches_only_owned_lines_and_reads_back(
    generated: GeneratedFile, changes: dict[str, str | None]
) -> None:
    doc = parse(generated.text)
    if not representable(changes):
        try:
            doc.updated(changes)
        except EnvFileError as exc:
            assert "cannot write the value" in str(exc)
            return
        raise AssertionError("an unrepresentable value was accepted")

    new = doc.updated(changes, block_comment="# managed by cypht-azure")
    keys = set(changes)

    # 1. symfony (port) reads back exactly the intended values; removed keys are gone
    reparsed = parse(new.render())
    for key, value in changes.items():
        assert reparsed.get(key) == value
    # keys not asked for keep their values (the generated values never refer to other keys)
    for key in doc.keys() - keys:
        assert reparsed.get(key) == doc.get(key)

    # 2. python-dotenv reads the written keys back too
    python = dotenv.dotenv_values(stream=io.StringIO(new.render()))
    for key, value in changes.items():
        if value is not None:
            assert python.get(key) == value
        else:
            assert key not in python

    # 3. every line the tool does not own is byte-identical and in order
    old_lines = _LINE.findall(doc.render())
    new_lines = _LINE.findall(new.render())
    kept_old = [ln for i, ln in enumerate(old_lines) if i not in owned_lines(doc, keys)]
    kept_new = [ln for i, ln in enumerate(new_lines) if i not in owned_lines(new, keys)]
    head = kept_new[: len(kept_old)]
    if kept_old and kept_old[-1] == old_lines[-1] and not kept_old[-1].endswith(("\n", "\r")):
        # appending after a last line without newline first ends that line
        assert head[:-1] == kept_old[:-1]
        assert head[-1] in (kept_old[-1], kept_old[-1] + new.newline)
    else:
        assert head == kept_old
    for extra in kept_new[len(kept_old):]:  # only the appended block's blank and comment lines
        assert extra.strip() in ("", "# managed by cypht-azure")

    # 4. line endings: a CRLF file gets no bare LF
    if "\r\n" in generated.text:
        assert re.search(r"(?<!\r)\n", new.render()) is None
    assert not new.render().startswith("\ufeff")


@SETTINGS
@given(value=values | tricky_values)
def test_format_value_reads_back_or_refuses(value: str) -> None:
    try:
        formatted = format_value(value)
    except EnvFileError as exc:
        assert value not in str(exc) or len(value) < 3
        return
    line = f"K={formatted}\n"
    assert parse(line).get("K") == value
    assert dotenv.dotenv_values(stream=io.StringIO(line))["K"] == value


@SETTINGS
@given(value=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"])))
def test_single_quotes_whenever_possible(value: str) -> None:
    simple = all(c.isprintable() for c in value) and "'" not in value and "\\" not in value
    if simple and "${" not in value:
        # an empty value is written bare (KEY=), as Cypht's template has it
        assert format_value(value) == (f"'{value}'" if value else "")


@settings(max_examples=100, deadline=None)
@given(secret=st.text(alphabet=st.sampled_from("ABCxyz0189~._-"), min_size=1, max_size=64))
def test_azure_secrets_always_single_quoted(secret: str) -> None:
    assert format_value(secret) == f"'{secret}'"
