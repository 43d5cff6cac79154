"""Differential tests against Cypht's real loader: symfony/dotenv under php-cli."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PhpLoad
from envfile_gen import GeneratedFile, files, tricky_values, updates, values
from hypothesis import HealthCheck, given, settings

from cypht_azure.envfile import EnvFileError, format_value, parse

pytestmark = pytest.mark.php

PHP_EXAMPLES = 50

# Tricky files; the port and PHP must agree on accepting them and on every value.
# Left out on purpose: "$(" at the very end of a file (symfony loops forever; the port refuses it) and
# empty defaults such as "${A:-}" (accepted by Debian's 5.4, refused by 6.4, which Cypht pins).
CORPUS = [
    "", "\n\n", "# only a comment", "K=v", "K=v\n", "K=v\r\nL=w\r\n", "K=v\rL=w\r",
    "K=Abc8Q~xYz.12_ab-CDef", "K='Abc8Q~'", 'K="Abc8Q~"', "K=https://x/?page=home&a=b",
    "K=abc#def", "K=abc #def", 'K="abc #def" # c', "K='abc #def'#c", "K=#x", "K=   # c", "K=\t#c",
    "K=abc def", "K = v", "K= v", "K =v", "\ufeffK=v", "K=\ufeffv",
    "K=ab$cd", 'K="ab$cd"', "K='ab$cd'", "K=ab\\$cd", 'K="ab\\$cd"', "K=a\\\\b", 'K="a\\\\b"',
    "export K=v", "export\tK=v", "export  K=v", "exportK=v", "export K", "export =v", "K",
    "K#c", "1K=v", "-K=v", "_K=v", "_1=v", "k=lower", "K.X=v", "K-X=v",
    "K=", 'K=""', "K=''", "K=abc   ", "K=abc\t\t", 'K="a\\nb"', 'K="a\\rb"', 'K="a\\tb"',
    "K='a\\nb'", 'K="a\nb"', "K='a\nb'", "K=\"abc", "K='abc", 'K="', "K='",
    "K='a'\"b\"c", "K=\"a'b\"", "K='a\"b'", "K=a\\'b", 'K=a\\"b', "K=a'b'", 'K=a"b"',
    'K="\\"quoted\\""', 'K="a\\\\"', 'K="a\\\\\\"b"', 'K="\\\\\\\\"', "K=\\\\\\\\",
    "A=1\nK=${A}x", "A=1\nK=$A", "A=1\nK='$A'", 'A=1\nK="${A}"', "A=1\nK=\\${A}",
    "K=${UNDEF:-fallback}", 'K="${UNDEF:-fall back}"', "K=${UNDEF:=set}\nL=$UNDEF",
    "K=$", "K=$1", "K=$$", "K=$ ", "K=${", "K=${}", "K=${:-x}", "K=$}", "K=${A", "K=${A:-x",
    "K=${A:-x'y}", 'K="${A:-x\'y}"', 'K="${A:-x{y}"', "K=$A b", "K=${1}",
    "K=$(echo x)", 'K="$(echo x)"', "K='$(echo x)'", "K=\\$(echo x)", "K=$(echo", "K=$(echo\nL=1",
    "K=$()", "K=$((1))", 'K="$()"',
    "   K=indented", "\tK=tab", "\n\n# c\n\t\nK=v\n\n", "K=a\x0b", "K=a\x0bb", "K=\x0cv",
    "A='x\ny'\nB=1\nC D\n", "A=1\nA=2\nA=3", "A=1\nB=$A\nA=2\nC=$A",
    "K=é~ü", "K='日本語'", "K=ok # comment with 'quote", "K='a' 'b'", "K='a' # c\nL=2",
    "K=\"a\"b c", "K=a\\", "K='a\\'", 'K="a\\"', "K=\\", "K=\\\\", "K=a#b #c",
    "# c\nexport OUTLOOK_CLIENT_SECRET='s~1' # managed\nOUTLOOK_CLIENT_ID=\"id\"\n",
]


def port_result(text: str) -> dict[str, str] | None:
    try:
        doc = parse(text)
    except EnvFileError:
        return None
    return doc.as_dict()


def test_port_agrees_with_php_on_corpus(tmp_path: Path, php_load: PhpLoad) -> None:
    paths = []
    for i, text in enumerate(CORPUS):
        path = tmp_path / f"{i}.env"
        path.write_bytes(text.encode("utf-8"))
        paths.append(path)
    disagreements = []
    for text, result in zip(CORPUS, php_load(paths), strict=True):
        expected = port_result(text)
        php = result["vars"] if result["ok"] else None
        if php != expected:
            disagreements.append((text, expected, result))
    assert disagreements == []


def test_written_files_load_in_php(tmp_path: Path, php_load: PhpLoad) -> None:
    """Files produced by updated() from generated files and values: PHP loads exactly what the port says."""
    cases: list[tuple[str, dict[str, str]]] = []

    @settings(max_examples=PHP_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(generated=files, changes=updates)
    def collect(generated: GeneratedFile, changes: dict[str, str | None]) -> None:
        try:
            new = parse(generated.text).updated(changes, block_comment="# managed by cypht-azure")
        except EnvFileError:
            return  # an unrepresentable value: refused before writing (covered elsewhere)
        expected = new.as_dict()
        for key, value in changes.items():
            assert expected.get(key) == value
        cases.append((new.render(), expected))

    collect()
    assert len(cases) >= PHP_EXAMPLES // 2
    paths = []
    for i, (text, _) in enumerate(cases):
        path = tmp_path / f"w{i}.env"
        path.write_bytes(text.encode("utf-8"))
        paths.append(path)
    results = php_load(paths)
    mismatches = [
        (text, expected, result)
        for (text, expected), result in zip(cases, results, strict=True)
        if not result["ok"] or result["vars"] != expected
    ]
    assert mismatches == []


def test_formatted_values_load_in_php(tmp_path: Path, php_load: PhpLoad) -> None:
    """Arbitrary values (quotes, $, #, backslashes, spaces, non-ASCII) as format_value writes them."""
    chosen: list[str] = []

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=values | tricky_values)
    def collect(value: str) -> None:
        try:
            format_value(value)
        except EnvFileError:
            return
        chosen.append(value)

    collect()
    assert len(chosen) >= 50
    doc = parse("# values\n").updated({f"V{i}": v for i, v in enumerate(chosen)})
    (tmp_path / "values.env").write_text(doc.render(), encoding="utf-8")
    (result,) = php_load([tmp_path / "values.env"])
    assert result["ok"], result
    assert result["vars"] == {f"V{i}": v for i, v in enumerate(chosen)}
