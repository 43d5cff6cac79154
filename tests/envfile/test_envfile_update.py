"""Editing a .env: only the lines that assign the keys being changed are touched."""

from __future__ import annotations

import io

import dotenv
import pytest

from cypht_azure.envfile import EnvFileError, format_value, parse

BLOCK = "# Outlook and Office365 OAuth (managed by cypht-azure)"


def test_updates_in_place_and_keeps_everything_else() -> None:
    text = (
        "# Cypht settings\n"
        "\n"
        "#aoutlook\n"
        "OUTLOOK_CLIENT_ID=\n"
        "OUTLOOK_CLIENT_SECRET=old  \n"
        "OUTLOOK_CLIENT_URI=http://localhost/?page=home\n"
        "LDAP_USER=''   \n"
        'LDAP_BASE_DN="dc=example,dc=com"\n'
    )
    new = parse(text).updated({"OUTLOOK_CLIENT_ID": "id-1", "OUTLOOK_CLIENT_SECRET": "s~1"}, block_comment=BLOCK)
    assert new.render() == text.replace("OUTLOOK_CLIENT_ID=\n", "OUTLOOK_CLIENT_ID='id-1'\n").replace(
        "OUTLOOK_CLIENT_SECRET=old  \n", "OUTLOOK_CLIENT_SECRET='s~1'\n"
    )


def test_every_occurrence_is_updated_and_export_kept() -> None:
    text = "export K=a\n# between\nK='b' # note\n  K=\"c\"\t# tab note\n"
    new = parse(text).updated({"K": "new"})
    assert new.render() == "export K='new'\n# between\nK='new' # note\n  K='new'\t# tab note\n"
    assert [a.export for a in new.assignments("K")] == [True, False, False]


def test_comment_right_after_equals_gets_a_space() -> None:
    # symfony reads "K=#x" as empty; "K='v'#x" would read as "v#x"
    new = parse("K=#x\n").updated({"K": "v"})
    assert new.render() == "K='v' #x\n"
    assert new.get("K") == "v"


def test_multiline_value_is_replaced_by_one_line() -> None:
    text = "A=1\nK=\"line1\nline2\" # c\nB=2\n"
    new = parse(text).updated({"K": "v"})
    assert new.render() == "A=1\nK='v' # c\nB=2\n"


def test_crlf_is_kept_for_changed_and_appended_lines() -> None:
    text = "# c\r\nA=1\r\n\r\n"
    new = parse(text).updated({"A": "2", "B": "3"}, block_comment=BLOCK)
    assert new.render() == f"# c\r\nA='2'\r\n\r\n{BLOCK}\r\nB='3'\r\n"
    assert new.newline == "\r\n"


def test_missing_keys_appended_in_order_after_the_comment() -> None:
    new = parse("A=1\n").updated({"Z": "z", "B": "b"}, block_comment=BLOCK)
    assert new.render() == f"A=1\n\n{BLOCK}\nZ='z'\nB='b'\n"


def test_append_without_final_newline_adds_one_first() -> None:
    new = parse("A=1").updated({"B": "2"})
    assert new.render() == "A=1\nB='2'\n"
    assert new.get("A") == "1"


def test_append_to_empty_file() -> None:
    assert parse("").updated({"B": "2"}, block_comment="managed").render() == "# managed\nB='2'\n"


def test_remove_deletes_exactly_the_assignment_lines() -> None:
    text = "# keep\nK=1\nA=x\nexport K='multi\nline'\n\nB=y"
    new = parse(text).updated({"K": None, "MISSING": None})
    assert new.render() == "# keep\nA=x\n\nB=y"
    assert new.get("K") is None


def test_nothing_differs_returns_same_document() -> None:
    doc = parse("K='v'\nK=v\n")
    assert doc.updated({"K": "v", "GONE": None}) is doc


def test_one_differing_occurrence_rewrites_all() -> None:
    assert parse("K=v\nK=w\n").updated({"K": "v"}).render() == "K='v'\nK='v'\n"


def test_bad_key_name_refused() -> None:
    with pytest.raises(EnvFileError, match="not a variable name"):
        parse("").updated({"1BAD": "v"})


def test_unrepresentable_value_refused_before_anything() -> None:
    doc = parse("A=1\n")
    with pytest.raises(EnvFileError, match="newline") as caught:
        doc.updated({"A": "2", "K": "x\ny"})
    assert caught.value.key == "K"
    assert doc.render() == "A=1\n"


def test_colon_equals_expansion_that_would_override_is_refused() -> None:
    doc = parse("K=old\nX=${K:=fallback}\n")
    with pytest.raises(EnvFileError, match="would not read back"):
        doc.updated({"K": ""})


def test_remove_refused_when_an_expansion_still_sets_the_key() -> None:
    with pytest.raises(EnvFileError, match="still set"):
        parse("K=1\nX=${K:=2}\n").updated({"K": None})


def test_python_dotenv_disagreement_is_refused() -> None:
    # symfony reads A as x\ ; python-dotenv reads \' as an escaped quote and swallows the next lines
    with pytest.raises(EnvFileError, match="python-dotenv"):
        parse("A='x\\'\n").updated({"K": "v"})


def test_block_comment_control_characters_refused() -> None:
    with pytest.raises(EnvFileError, match="control character"):
        parse("").updated({"K": "v"}, block_comment="a\rb")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Abc8Q~xYz.12_ab-CD", "'Abc8Q~xYz.12_ab-CD'"),
        ("", ""),  # KEY=, as in Cypht's .env.example
        ("with space #hash", "'with space #hash'"),
        ("$HOME and $(cmd)", "'$HOME and $(cmd)'"),
        ("a\\b", "'a\\b'"),
        ("it's", '"it\'s"'),
        ('both \' and "', '"both \' and \\""'),
        ("a\\\\b", '"a\\\\\\\\b"'),
        ("ends\\", '"ends\\\\"'),
    ],
)
def test_format_value(value: str, expected: str) -> None:
    formatted = format_value(value)
    assert formatted == expected
    line = f"K={formatted}\n"
    assert parse(line).get("K") == value
    assert dotenv.dotenv_values(stream=io.StringIO(line))["K"] == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a\nb", "newline"),
        ("a\rb", "control character"),
        ("tab\there", "control character"),
        ("nul\0", "control character"),
        ("${HOME}", "python-dotenv would expand"),
        ("x${A:-b}y", "python-dotenv would expand"),
        ("it's $HOME", "expands $"),
        ("it's \\n", "backslash before n"),
        ('\\\\"', "backslash before"),
    ],
)
def test_format_value_refuses(value: str, problem: str) -> None:
    with pytest.raises(EnvFileError, match="cannot write the value") as caught:
        format_value(value)
    assert problem in str(caught.value)
    if len(value) > 3:
        assert value not in str(caught.value)
