"""The recordings a gateway process owes, on disk: a whole answer is sent before it is recorded (gateway/views.py), so
its event is first appended to this process's journal, `<VAR_DIR>/gateway/journal-<pid>.jsonl`.

One `os.write` per call, no fsync: an entry outlives the process (a crash, a kill -9), not the machine (power loss,
a kernel crash). The journal is emptied whenever nothing is left to record, and kept whole once a recording failed.
A process that starts takes over the journals of processes that are gone (and its own pid's, left by an earlier
process with the same pid) and records their entries again. Recording an entry twice records it once (its request id
is unique), so an entry taken over twice, or one that was recorded before its process died, changes nothing.

Entries hold what the event holds (ids, model, token counts, the request's `user`), never a prompt or a key.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from django.conf import settings

from gateway.services import Recording

logger = logging.getLogger(__name__)


class _Journal:
    def __init__(self) -> None:
        self.fd: int | None = None
        self.pid = 0
        self.keep = False  # a recording failed: its entry must wait for the next start
        self.lock = threading.Lock()


_journal = _Journal()


def _directory() -> Path:
    return Path(settings.VAR_DIR) / "gateway"


def _path(pid: int) -> Path:
    return _directory() / f"journal-{pid}.jsonl"


def _fd() -> int:
    """This process's journal, opened on first use (and again in a forked child)."""
    pid = os.getpid()
    if _journal.fd is None or _journal.pid != pid:
        _directory().mkdir(parents=True, exist_ok=True)
        _journal.fd = os.open(_path(pid), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _journal.pid, _journal.keep = pid, False
    return _journal.fd


def journal_append(recording: Recording) -> None:
    """Owe this recording: written before the answer is sent."""
    line = json.dumps({"account_id": recording.account_id, "api_key_id": recording.api_key_id,
                       "event": recording.event}, separators=(",", ":")) + "\n"  # fmt: skip
    with _journal.lock:
        os.write(_fd(), line.encode())


def journal_settled() -> None:
    """Nothing is left to record in this process: every entry is recorded, the journal is emptied."""
    with _journal.lock:
        if _journal.fd is not None and _journal.pid == os.getpid() and not _journal.keep:
            try:
                os.ftruncate(_journal.fd, 0)
            except OSError as exc:  # the entries stay: recording them again changes nothing
                logger.error("gateway journal: cannot empty it (%s)", type(exc).__name__)


def journal_keep() -> None:
    """A recording failed: keep every entry, for the next process that starts to record again."""
    with _journal.lock:
        _journal.keep = True


def journal_close() -> None:
    """The process stops with nothing left to record: its journal goes (kept when a recording failed)."""
    with _journal.lock:
        if _journal.fd is None or _journal.pid != os.getpid():
            return
        os.close(_journal.fd)
        _journal.fd = None
        if not _journal.keep:
            _path(_journal.pid).unlink(missing_ok=True)


def _gone(pid: int) -> bool:
    if pid == os.getpid():
        return True  # an earlier process with this pid: this one has written nothing yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def journal_take_over() -> list[Recording]:
    """The entries left by processes that are gone, now owed by this one (copied into its journal first, then their
    files removed). Called once, when the process starts and before it answers any call."""
    directory = _directory()
    try:
        _fd()  # this process's journal exists from here on
        paths = sorted(directory.glob("journal-*.jsonl"))
    except OSError as exc:  # the process still serves; what it answers is recorded before it answers
        logger.error("gateway journal: %s cannot be used (%s)", directory, type(exc).__name__)
        return []
    owed: list[Recording] = []
    for path in paths:
        pid = path.stem.removeprefix("journal-")
        if not pid.isdigit() or not _gone(int(pid)):
            continue
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:  # another process took it over meanwhile
            continue
        except OSError as exc:
            logger.error("gateway journal %s cannot be read (%s)", path.name, type(exc).__name__)
            continue
        taken = []
        for line in lines:
            try:
                entry = json.loads(line)
                taken.append(Recording(account_id=int(entry["account_id"]), api_key_id=entry["api_key_id"],
                                       event=dict(entry["event"])))  # fmt: skip
            except (ValueError, KeyError, TypeError):
                logger.error("gateway journal %s: an unreadable entry is skipped", path.name)
        if int(pid) != os.getpid():
            try:
                for recording in taken:
                    journal_append(recording)
                path.unlink(missing_ok=True)
            except OSError as exc:  # its file stays for the next start; recording its entries twice changes nothing
                logger.error("gateway journal %s cannot be taken over (%s)", path.name, type(exc).__name__)
        owed += taken
    if owed:
        logger.warning("gateway journal: %d recordings left by stopped processes are recorded again", len(owed))
    return owed
