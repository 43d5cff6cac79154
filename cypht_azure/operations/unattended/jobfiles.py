"""The text of the files a schedule writes (a systemd service and timer, a cron block), and the rules
that keep a path from becoming anything but a path there.

Every path or value pasted into these files goes through this module:

- control characters (a newline above all: it would start a new directive or a new cron line) are
  refused, as is a value systemd or cron could not hold unchanged;
- systemd: per systemd.syntax(7), `%` is doubled (specifiers), `$` is doubled in command lines
  (environment variables), a word with anything beyond a plain path's characters is double-quoted
  with `\\` and `"` escaped; a line never ends in a backslash (which would continue it);
- cron: per cron(8)/crontab(5), a `%` in the command is a newline unless written `\\%`; the command is
  otherwise plain /bin/sh, quoted with shlex.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from cypht_azure.errors import InputError

CRON_BEGIN, CRON_END = "# BEGIN cypht-azure rotate-secret --env-file ", "# END cypht-azure rotate-secret --env-file "
# run-parts' rule, which Debian's cron applies to /etc/cron.d: letters, digits, '_' and '-' only.
CRON_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def control_characters(text: str) -> list[str]:
    """The control characters in `text` (C0, DEL and C1), as escapes a message can show."""
    return sorted({repr(c)[1:-1] for c in text if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F})


def check_value(what: str, text: str, *, hint: str) -> str:
    """Refuse a value that no unit or cron file could hold as one value: a control character ends the
    line it is on, and what follows would be read as a directive or a job of its own."""
    bad = control_characters(text)
    if bad:
        raise InputError(f"{what} {text!r} contains control characters ({', '.join(bad)}); a schedule "
                         "cannot name it without the rest being read as a line of its own.", hint=hint)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} {text!r} is not valid UTF-8, which unit and cron files are.", hint=hint) from None
    return text


# --- systemd ------------------------------------------------------------------------------------------------

def systemd_word(word: str) -> str:
    """One word of ExecStart=: specifiers (`%`) and variables (`$`) doubled, quoted when needed."""
    word = word.replace("%", "%%").replace("$", "$$")
    if _PLAIN_WORD.fullmatch(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_command(argv: list[str]) -> str:
    return " ".join(systemd_word(w) for w in argv)


def systemd_path(path: Path, *, hint: str) -> str:
    """A path setting (EnvironmentFile=): taken whole, specifiers expanded, white space at either end
    dropped and a final backslash continuing the line, so those are refused."""
    text = str(path)
    if text != text.strip() or text.endswith("\\"):
        raise InputError(f"{text!r}: systemd cannot name a file whose path starts or ends with white space "
                         "or ends with a backslash.", hint=hint)
    return text.replace("%", "%%")


def systemd_text(text: str) -> str:
    """Free text (Description=): specifiers doubled; never ends in a backslash."""
    text = text.replace("%", "%%")
    return text + "." if text.endswith("\\") else text


def systemd_unquote(value: str) -> list[str]:
    """ExecStart= back into argv, as systemd reads it (for `show`): words, quotes, C escapes, `%%`, `$$`."""
    words: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t":
            i += 1
        if i >= n:
            break
        word: list[str] = []
        quote: str | None = None
        while i < n and (quote or value[i] not in " \t"):
            c = value[i]
            if c == "\\" and i + 1 < n:
                word.append(value[i + 1])
                i += 2
                continue
            if quote and c == quote:
                quote = None
            elif not quote and c in "\"'":
                quote = c
            else:
                word.append(c)
            i += 1
        words.append("".join(word).replace("%%", "%").replace("$$", "$"))
    return words


def removal_command(env_file: Path, *where: str) -> str:
    """The command that finds and deletes this schedule, as the file's header prints it."""
    return shlex.join(["cypht-azure", "schedule", "remove", "--env-file", str(env_file), *where])


def service_unit(env_file: Path, run_as: tuple[str, str], credentials: Path, argv: list[str], remove: str) -> str:
    user, group = run_as
    hint = "Choose a credentials file path without white space at either end (--credentials-file)."
    return f"""\
# Written by `cypht-azure schedule install`; delete it with: {remove}
[Unit]
Description={systemd_text(f"Rotate Cypht's Outlook/Office365 client secret in {shlex.quote(str(env_file))} when due")}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
# The operator's account, which holds the tenant credential: never the .env owner (the web server).
User={user}
Group={group}
EnvironmentFile={systemd_path(credentials, hint=hint)}
ExecStart={systemd_command(argv)}
UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
"""


def timer_unit(env_file: Path, remove: str) -> str:
    return f"""\
# Written by `cypht-azure schedule install`; delete it with: {remove}
[Unit]
Description={systemd_text(f"Twice a day: rotate the client secret in {shlex.quote(str(env_file))} when a third of its lifetime is left")}

[Timer]
OnCalendar=*-*-* 00,12:00:00
RandomizedDelaySec=12h
Persistent=true

[Install]
WantedBy=timers.target
"""


# --- cron ---------------------------------------------------------------------------------------------------

def check_cron_name(path: Path) -> None:
    if not CRON_NAME.fullmatch(path.name):
        raise InputError(f"{path}: cron ignores files in /etc/cron.d whose name has anything but letters, "
                         "digits, '_' and '-' (a dot above all), so this schedule would never run.",
                         hint=f"Choose a name such as {path.parent / 'cypht-azure'} (--cron-file).")


def cron_escape(command: str) -> str:
    """cron cuts a command at the first `%` not written `\\%` (the rest becomes its stdin)."""
    if re.search(r"\\%", command):
        raise InputError("A path holds a backslash before a '%', which cron cannot pass on unchanged.",
                         hint="Rename the file or folder, or choose another path.")
    return command.replace("%", "\\%")


def cron_unescape(command: str) -> str:
    """The command as cron hands it to /bin/sh (for tests and `show`)."""
    return command.replace("\\%", "%")


def cron_command(credentials: Path, argv: list[str]) -> str:
    load = f"set -a; . {shlex.quote(str(credentials))}; set +a"
    return cron_escape(f"{load}; exec {shlex.join(argv)}")


def cron_block(env_file: Path, user: str, credentials: Path, argv: list[str], when: str, remove: str) -> str:
    return (f"{CRON_BEGIN}{env_file}\n"
            f"# Twice a day, at a minute chosen at install time (cron has no random delay of its own).\n"
            f"# Delete it with: {remove}\n"
            f"{when} * * * {user} {cron_command(credentials, argv)}\n"
            f"{CRON_END}{env_file}\n")


def cron_blocks(text: str) -> dict[str, str]:
    blocks: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines(keepends=True):
        if line.startswith(CRON_BEGIN):
            current = line[len(CRON_BEGIN):].rstrip("\n")
            blocks[current] = line
        elif current is not None:
            blocks[current] += line
            if line.startswith(CRON_END):
                current = None
    return blocks
