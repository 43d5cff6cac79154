"""The EnvFileErrors of the disk side: each names the problem and the fix, never a value."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cypht_azure.envfile import MAX_ENV_BYTES, EnvFileError


class LockTimeout(EnvFileError):
    """Another run held the folder's lock for longer than this run would wait: nothing is wrong with the file."""


def lock_timeout(path: Path, timeout: float) -> LockTimeout:
    return LockTimeout(f"another cypht-azure run has been editing it for more than {timeout:g} s.", path=path,
                       fix="Wait for the other run to finish, then run again.")


def changed(path: Path) -> EnvFileError:
    return EnvFileError(
        "it was changed by another program while cypht-azure was working on it (not through "
        "cypht-azure's lock); it was not overwritten.",
        path=path,
        fix="Run again once nothing else is editing the file.",
    )


def too_large(path: Path) -> EnvFileError:
    return EnvFileError(
        f"it is larger than {MAX_ENV_BYTES // 1024} KiB; a Cypht .env is a few KiB.",
        path=path,
        fix="Check that this is Cypht's .env file.",
    )


def is_directory(path: Path) -> EnvFileError:
    return EnvFileError(
        "it is a directory, not a file.",
        path=path,
        fix="Pass the path of the .env file itself (e.g. /var/www/cypht/.env), or remove the directory.",
    )


def no_folder(path: Path, folder: Path) -> EnvFileError:
    return EnvFileError(
        f"its folder {folder} does not exist.",
        path=path,
        fix="Check the path of Cypht's install, or create the folder.",
    )


def dangling(path: Path, real: Path) -> EnvFileError:
    return EnvFileError(
        f"it is a symbolic link to {real}, which does not exist (or is a link loop).",
        path=path,
        fix="Create the target file (it may be empty), or point the link at the real .env.",
    )


def user_name(uid: int) -> str:
    """`www-data (user id 33)`, or only the ID for a user this system has no name for."""
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (user id {uid})"
    except KeyError:
        return f"user id {uid}"


def another_owner(path: Path, uid: int, mode: int, euid: int) -> EnvFileError:
    """A file its owner may write, run on as someone else: who owns it and whom to run as, not "read-only"."""
    import pwd

    try:
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        owner = None
    run_as = f"sudo -u {owner} cypht-azure …" if owner else f"setpriv --reuid={uid} cypht-azure …"
    return EnvFileError(
        f"it belongs to user id {uid}" + (f" ({owner})" if owner else "") + f" (mode {mode:04o}), not to the user "
        f"this run is, {user_name(euid)}: only its owner (or root) can rewrite it without changing its owner.",
        path=path,
        fix=f"Run cypht-azure as {owner or f'user id {uid}'} ({run_as}) or as root.",
    )


def os_error(exc: OSError, path: Path, doing: str) -> EnvFileError:
    fixes = {
        errno.ENOSPC: "Free some disk space and run again; the original file is unchanged.",
        errno.EDQUOT: "Raise the disk quota and run again; the original file is unchanged.",
        errno.EACCES: "Run as the file's owner (or root), or fix the permissions.",
        errno.EPERM: "Run as the file's owner (or root), or fix the permissions.",
        errno.EROFS: "The file system is read-only; remount it read-write or edit the file elsewhere.",
    }
    return EnvFileError(
        f"could not {doing} it: {os.strerror(exc.errno) if exc.errno else type(exc).__name__}.",
        path=path,
        fix=fixes.get(exc.errno or 0, "Check the path and its permissions."),
    )


def read_only_file_system(path: Path, folder: Path | None) -> EnvFileError:
    """The file (a bind-mounted one) or its ``folder`` is on a read-only mount."""
    where = f"its folder {folder} is" if folder is not None else "it is"
    return EnvFileError(
        f"{where} on a read-only file system (mounted ro, EROFS): nothing there can be rewritten, so the new "
        "secret could not be stored.",
        path=path,
        fix=f"Remount it read-write (the mount that holds {folder or path}), or point --env-file at the writable "
            "copy; then run again.",
    )


def flagged(path: Path, real: Path, folder: Path | None, *, immutable: bool) -> EnvFileError:
    """chattr +i or +a on the file, or on its ``folder``: even root may not replace or rewrite it."""
    target = folder or real
    if immutable:
        what = (f"its folder {folder} is immutable (chattr +i): nobody, not even root, may change the files in it"
                if folder else "it is immutable (chattr +i): nobody, not even root, may change it")
        return EnvFileError(f"{what}, so the new secret could not be stored.", path=path,
                            fix=f"If it may be changed: chattr -i {target}; then run again.")
    what = (f"its folder {folder} is append-only (chattr +a): files may be added to it but never renamed or "
            "removed, so .env cannot be replaced." if folder else
            "it is append-only (chattr +a): it may only grow, so it cannot be rewritten.")
    return EnvFileError(what, path=path, fix=f"If it may be changed: chattr -a {target}; then run again.")


WRITE_FIXES = {
    errno.ENOSPC: "Free some disk space and run again.",
    errno.EDQUOT: "Raise the disk quota and run again.",
}


def reason(exc: BaseException) -> str:
    """An OS error's own words (never a value)."""
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return getattr(exc, "message", None) or type(exc).__name__
