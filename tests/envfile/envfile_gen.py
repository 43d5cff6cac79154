"""Hypothesis strategies for .env files and updates, shared by the property and PHP tests."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

KEYS = ["A", "B", "OUTLOOK_CLIENT_ID", "OUTLOOK_CLIENT_SECRET", "OFFICE365_CLIENT_SECRET", "_X"]
NEW_KEYS = ["OFFICE365_CLIENT_ID", "NEW_KEY"]

# Values a secret or a setting may hold: any printable text, weighted towards the characters that
# matter to the two readers.
TRICKY = "$'\"#\\ {}()=:-~._`!&;%\t"
_tricky = st.text(alphabet=st.sampled_from(TRICKY.replace("\t", "") + "ab$"), min_size=1, max_size=12)
values = st.one_of(
    st.text(alphabet=st.sampled_from("Aa0~._-"), max_size=44),
    _tricky,
    _tricky,
    st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]), max_size=12),
)

_plain = st.text(alphabet=st.sampled_from("Ab9~._-:/?&=+,@%"), max_size=10)
_single = st.text(alphabet=st.sampled_from("Ab9 #$\"=é"), max_size=10)  # no ' and no \ (python-dotenv)
_double = st.text(alphabet=st.sampled_from("Ab9 #'=é"), max_size=10)  # no ", \ or $
_comment_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=15)


@st.composite
def assignment_line(draw: st.DrawFn) -> str:
    key = draw(st.sampled_from(KEYS))
    style = draw(st.sampled_from(["plain", "single", "double", "empty"]))
    value = {
        "plain": lambda: draw(_plain),
        "single": lambda: "'" + draw(_single) + "'",
        "double": lambda: '"' + draw(_double) + '"',
        "empty": lambda: "",
    }[style]()
    prefix = draw(st.sampled_from(["", "", "export ", "export\t", "  "]))
    suffix = draw(st.sampled_from(["", "", "   ", " # note", "\t# tab note"]))
    if style == "plain" and suffix.strip() == "" and value == "":
        suffix = ""
    return f"{prefix}{key}={value}{suffix}"


line = st.one_of(
    assignment_line(),
    _comment_text.map(lambda t: "#" + t),
    st.sampled_from(["", " ", "\t", "  \t"]),
)


@dataclass
class GeneratedFile:
    lines: list[str]
    newline: str
    final_newline: bool

    @property
    def text(self) -> str:
        body = self.newline.join(self.lines)
        return body + self.newline if self.final_newline and self.lines else body


files = st.builds(
    GeneratedFile,
    lines=st.lists(line, max_size=12),
    newline=st.sampled_from(["\n", "\r\n"]),
    final_newline=st.booleans(),
)

updates = st.dictionaries(
    st.sampled_from(KEYS + NEW_KEYS),
    st.one_of(st.none(), values, st.text(alphabet=st.sampled_from("Aa0~._-"), min_size=40, max_size=40)),
    max_size=4,
)

# Longer strings made only of the characters the readers treat specially.
tricky_values = st.text(alphabet=st.sampled_from(TRICKY.replace("\t", "") + "ab"), min_size=4, max_size=16)
