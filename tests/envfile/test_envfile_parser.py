"""The Python port of symfony/dotenv's Dotenv::parse() against the behaviour documented in
docs (reference cypht.md §4, tested there with Debian's php-symfony-dotenv) and symfony's source."""

from __future__ import annotations

import pytest

from cypht_azure.envfile import EnvFileError, parse

SECRET = "Abc8Q~xYz.12_ab-CDefGhIjKlMnOpQrStUvWxYz0123"


# --- every row of the table in cypht.md §4 ---------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"K={SECRET}", SECRET),
        (f'K="{SECRET}"', SECRET),
        (f"K='{SECRET}'", SECRET),
        ("K=https://mail.example.com/?page=home", "https://mail.example.com/?page=home"),
        ("K=https://x/?page=home&a=b", "https://x/?page=home&a=b"),
        ("K=abc#def", "abc#def"),
        ("K=abc #def", "abc"),
        ('K="abc #def" # c', "abc #def"),
        ("K=ab$cd", "ab"),
        ('K="ab$cd"', "ab"),
        ("K='ab$cd'", "ab$cd"),
        ("K=ab\\$cd", "ab$cd"),
        ("K=a\\\\b", "a\\b"),
        ("export K=v", "v"),
        ("K=v\r\nL=w\r\n", "v"),
        ("K=", ""),
        ('K=""', ""),
        ("K=abc   ", "abc"),
        ('K="a\\nb"', "a\nb"),
        ("K=v", "v"),  # no final newline
    ],
)
def test_table_rows_read_like_symfony(text: str, expected: str) -> None:
    assert parse(text).get("K") == expected


def test_duplicate_keys_last_one_wins() -> None:
    doc = parse("K=first\nK=second\n")
    assert doc.get("K") == "second"
    assert [a.line for a in doc.assignments("K")] == [1, 2]


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ("K=abc def", "spaces must be surrounded by quotes", 1),
        ("K = v", "whitespace after the variable name", 1),
        ("K= v", "whitespace before the value", 1),
        ("\ufeffK=v", "byte-order mark", 1),
        ('A=1\nK="abc\n', "missing quote", 2),
        ("K=ab$(echo x)", "command substitution", 1),
    ],
)
def test_table_rows_rejected_by_symfony(text: str, problem: str, line: int) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse(text)
    assert problem in str(caught.value)
    assert caught.value.line == line
    assert caught.value.fix


# --- more of symfony's rules --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("K='a'\"b\"c", "abc"),  # segments concatenate
        ("K=\"a'b\"", "a'b"),
        ("K='a\"b'", 'a"b'),
        ("K=a\\'b", "a'b"),  # \' and \" are escapes in unquoted values
        ("K=a\\\"b", 'a"b'),
        ("K='multi\nline'", "multi\nline"),
        ('K="multi\nline"', "multi\nline"),
        ('K="a\\\\b"', "a\\b"),
        ('K="a\\tb"', "a\\tb"),  # only \n, \r, \" and \\ are escapes
        ("K=\"a\\$b\"", "a$b"),
        ("K=${UNDEFINED}", ""),
        ("K=${UNDEFINED:-fallback}", "fallback"),
        ("A=1\nK=${A}x", "1x"),
        ("A=1\nK=$A", "1"),
        ("A=1\nK='$A'", "$A"),
        ("K=$", "$"),
        ("K=$1", "$1"),
        ("K=\\$(echo x)", "$(echo x)"),  # escaped command substitution is literal
        ("K=${:-x}", "x"),  # PHP keeps unmatched middle groups: an empty name is "set"
        ("K=$}", "}"),
        ("K=${}", ""),
        ("K=#not-a-comment", ""),  # the empty-value rule swallows a comment right after =
        ("K=   # comment", ""),
        ("   K=indented", "indented"),
        ("\n\n# c\n\t\nK=v\n\n", "v"),
        ("export\tK=v", "v"),
        ("exportK=v", None),  # the name is exportK
        ("K=é~ü", "é~ü"),
        ("K=a\x0b", "a"),  # PCRE's \s (rtrim) includes vertical tab
    ],
)
def test_symfony_rules(text: str, expected: str | None) -> None:
    assert parse(text).get("K") == expected


def test_name_forms() -> None:
    doc = parse("_K=a\nk=b\nK_1=c\n")
    assert (doc.get("_K"), doc.get("k"), doc.get("K_1")) == ("a", "b", "c")
    assert doc.keys() == {"_K", "k", "K_1"}


def test_colon_equals_default_assigns_the_other_variable() -> None:
    doc = parse("K=${OTHER:=d}\n")
    assert doc.get("K") == "d"
    assert doc.get("OTHER") == "d"
    assert doc.assignments("OTHER") == []


def test_environment_wins_over_file_values_except_for_http_names() -> None:
    text = "A=file\nHTTP_X=file\nK=$A\nL=$HTTP_X\nM=$HTTP_Y\n"
    doc = parse(text, environ={"A": "env", "HTTP_X": "env", "HTTP_Y": "env"})
    assert (doc.get("K"), doc.get("L"), doc.get("M")) == ("env", "file", "env")


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ("A=1\n1K=v", "invalid character in variable name", 2),
        ("A=1\n\n-K=v", "invalid character in variable name", 3),
        ("K", "missing =", 1),
        ("K#c", "missing =", 1),
        ("export K\n", "unable to unset", 1),
        ("A=1\nK:v", "missing =", 2),
        ("K='abc", "missing quote", 1),
        ('K="', "missing quote", 1),
        ("A='x\ny'\nB=1\nC D\n", "whitespace after the variable name", 4),  # lines counted across values
        ("K=$(echo", "missing closing parenthesis", 1),
        ("K=$(", "missing closing parenthesis", 1),  # symfony itself loops forever here
        ("K=$(echo\nL=1", "missing closing parenthesis", 1),
        ("K=${A", "unclosed brace", 1),
        ("K=${A:-}", "unclosed brace", 1),  # symfony 6.4 needs a non-empty default
        ("K=\"${A:-x'y}\"", "unsupported character", 1),
        ('K="$(echo x)"', "command substitution", 1),
        ("K=a\tb", "spaces must be surrounded by quotes", 1),
        ("K=\x0cK", "spaces must be surrounded by quotes", 1),
    ],
)
def test_rejected_with_line_number(text: str, problem: str, line: int) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse(text)
    assert problem in str(caught.value)
    assert caught.value.line == line


def test_spaces_allowed_when_an_expansion_changed_the_value() -> None:
    # symfony only complains about spaces when nothing was expanded
    assert parse("K=$A b").get("K") == " b"


def test_assignment_positions_cover_multiline_values_and_comments() -> None:
    text = "# head\n\nexport  A='x\ny' # tail\nB=2\n"
    a, b = parse(text).assignments()
    assert (a.key, a.line, a.end_line, a.export, a.value_col, a.value_end_col) == ("A", 3, 4, True, 10, 3)
    assert (b.line, b.end_line, b.export) == (5, 5, False)


def test_errors_and_reprs_never_contain_values() -> None:
    secret = "s3cr3t~VALUE"
    doc = parse(f"K='{secret}'\n")
    assert secret not in repr(doc)
    assert secret not in repr(doc.assignments("K"))
    for text in (f"K={secret} x", f"K='{secret}", f"K=$({secret}", f"K={secret}\nX Y"):
        with pytest.raises(EnvFileError) as caught:
            parse(text)
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
