"""Resolving the `.env` path once, as the kernel would, and the rule for symlinks on the way."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cypht_azure.envdisk.problems import dangling, no_folder, os_error
from cypht_azure.envfile import EnvFileError

MAX_LINK_HOPS = 40


def resolve(given: Path) -> Path:
    """Follow every symlink of ``given`` once, as the kernel would, checking who owns each link.

    Returns the real path of the file (which may not exist yet). Raises EnvFileError for a link
    another user could re-point (see ``check_link``), a dangling link or a loop.
    """
    start = given if given.is_absolute() else Path(os.getcwd()) / given
    pending = list(start.parts[1:])
    done = Path("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            done = done.parent
            continue
        candidate = done / part
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            if hops:  # a link points at something missing
                raise dangling(given, candidate.joinpath(*pending)) from None
            if pending:
                raise no_folder(given, candidate) from None
            return candidate
        except NotADirectoryError:
            raise no_folder(given, candidate) from None
        except OSError as exc:
            raise os_error(exc, given, "look up") from None
        if not stat.S_ISLNK(st.st_mode):
            done = candidate
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise dangling(given, candidate)
        check_link(given, candidate, st)
        link = Path(os.readlink(candidate))
        if link.is_absolute():
            done = Path("/")
            pending = list(link.parts[1:]) + pending
        else:
            pending = list(link.parts) + pending
    return done


def check_link(given: Path, link: Path, st: os.stat_result) -> None:
    """Refuse a link another user may re-point while we work (the kernel's protected_symlinks rule).

    As root, any link not owned by root is refused: the user who owns it (often the web server's
    www-data) could point it at /etc/shadow between our read and our write. Otherwise the kernel's own
    rule applies: in a sticky world-writable folder only the follower's or the folder owner's links.
    """
    euid = os.geteuid()
    if st.st_uid == euid:
        return
    if euid == 0:
        raise EnvFileError(
            f"it goes through the symbolic link {link}, which belongs to user id {st.st_uid}: running as "
            "root, cypht-azure does not follow a link that another user can re-point (the kernel's "
            "protected_symlinks rule).",
            path=given,
            fix=f"Pass the real path instead (--env-file \"$(realpath {given})\"), or let root own the "
                f"link: chown -h root {link}",
        )
    folder = os.stat(link.parent)
    sticky_world = folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH
    if sticky_world and st.st_uid != folder.st_uid:
        raise EnvFileError(
            f"it goes through the symbolic link {link} of user id {st.st_uid} in a sticky world-writable "
            "folder, which the kernel's protected_symlinks rule forbids following.",
            path=given,
            fix="Pass the real path of the .env file instead.",
        )
