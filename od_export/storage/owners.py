"""Names of od-export's temporary directories, and whether the process that made one still runs.

An export is built in a hidden staging directory beside its target.  ``kill -9``
(what the OOM killer sends) gives no chance to clean up, so the name itself says
who made it: ``.od-export-staging-<target>.<pid>.<start>.<host>.<random>``, where
``start`` is the process's start time (clock ticks since boot, from ``/proc``) and
``host`` a short hash of the host name.  A later export to the same target removes a
leftover only when its owner is provably gone: same host, and that pid is not
running or now belongs to a process that started at another time.  A directory
from another host (a shared file system) is never removed, only reported.
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass
from functools import lru_cache

STAGING_PREFIX = ".od-export-staging-"
RETIRED_PREFIX = ".od-export-retired-"
LOCK_PREFIX = ".od-export-lock-"
_OWNED = re.compile(
    r"^(?P<kind>\.od-export-(?:staging|retired)-)(?P<target>.+)\.(?P<pid>\d+)\.(?P<start>\d+)\.(?P<host>[0-9a-f]{8})\.(?P<random>[A-Za-z0-9_]+)$"
)


@lru_cache(maxsize=1)
def host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def process_start(pid: int) -> int:
    """Start time of ``pid`` in clock ticks since boot; 0 where /proc does not tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return 0
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])  # field 22 of stat(5), counting from the state field (3)
    except (IndexError, ValueError):
        return 0


def owner_token() -> str:
    """``<pid>.<start>.<host>`` of this process, embedded in every name it creates."""
    pid = os.getpid()
    return f"{pid}.{process_start(pid)}.{host_tag()}"


@dataclass(frozen=True)
class OwnedName:
    """A parsed staging or retired directory name."""

    kind: str
    target: str
    pid: int
    start: int
    host: str

    @property
    def is_retired(self) -> bool:
        return self.kind == RETIRED_PREFIX

    def describe(self) -> str:
        where = "this host" if self.host == host_tag() else f"host {self.host}"
        return f"process {self.pid} on {where}"


def parse_owned_name(name: str) -> OwnedName | None:
    match = _OWNED.match(name)
    if match is None:
        return None
    return OwnedName(match["kind"], match["target"], int(match["pid"]), int(match["start"]), match["host"])


def owner_alive(owned: OwnedName) -> bool | None:
    """True if the owner still runs, False if it is gone, None if that cannot be known here."""
    if owned.host != host_tag():
        return None
    try:
        os.kill(owned.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        pass
    current_start = process_start(owned.pid)
    if owned.start and current_start and current_start != owned.start:
        return False  # the pid was reused by a later process
    return True


def staging_name(target_name: str, random_part: str = "") -> str:
    """Prefix for ``tempfile.mkdtemp`` (it appends the random part) or a full name."""
    return f"{STAGING_PREFIX}{target_name}.{owner_token()}.{random_part}"


def retired_name(target_name: str, random_part: str) -> str:
    return f"{RETIRED_PREFIX}{target_name}.{owner_token()}.{random_part}"


def is_od_export_temporary(name: str) -> bool:
    """Hidden names od-export creates beside a target: never an export themselves."""
    return name.startswith((STAGING_PREFIX, RETIRED_PREFIX, LOCK_PREFIX))
