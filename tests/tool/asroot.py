"""Root and www-data on one machine, for the tests where the web server user attacks a root run.

`AS_WWW_DATA` prefixes a command to run it as www-data (setpriv); `in_namespace(tmp_path)` prefixes a
root command with a private mount namespace whose /etc is an overlay (its writes land in
tmp_path/etc-upper) and whose /var/log is an empty tmpfs, so a root run's defaults can be exercised
without touching this machine's.
"""

from __future__ import annotations

from pathlib import Path

AS_WWW_DATA = ["setpriv", "--reuid=www-data", "--regid=www-data", "--clear-groups"]
WWW_DATA = 33


def in_namespace(tmp_path: Path) -> list[str]:
    upper, work = tmp_path / "etc-upper", tmp_path / "etc-work"
    upper.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    script = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc && "
              'mount -t tmpfs tmpfs /var/log && exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
