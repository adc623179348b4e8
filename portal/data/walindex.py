"""Whether anything was committed to a WAL database, read from its WAL-index without a system call.

In WAL mode SQLite keeps a "wal-index" in the ``-shm`` file beside the database, which every
connection maps into memory. Its first 96 bytes are two copies of a header that every commit
rewrites: the count of frames in the log and their checksum change with each transaction,
the salts with each restart of the log (the layout for Unix is documented at
https://www.sqlite.org/walformat.html). A reader that kept a copy of those bytes knows that
nothing was committed while they stay the same.

Asking SQLite instead (``PRAGMA data_version``) takes and drops a lock on the file and reads
its size: three system calls per web request, which cost more than the rest of the revision
check. Bytes that differ (or that a writer is changing as they are read) only mean "ask
SQLite"; they never stand in for its answer.
"""
from __future__ import annotations

import mmap
import os

HEADER_BYTES = 96


class WalIndexWatch:
    """A read-only view of a WAL database's wal-index header.

    Create it only for a connection that has read the database in WAL mode and keep it no
    longer than that connection: while a connection of this process has the wal-index open,
    SQLite never truncates the file under the mapping.
    """

    def __init__(self, db_path: str | None):
        """Map the header of ``db_path``'s wal-index; without one (None, no file, too short) watch nothing."""
        self._map: mmap.mmap | None = None
        if not db_path:
            return
        try:
            fd = os.open(f"{db_path}-shm", os.O_RDONLY)
        except OSError:
            return
        try:
            if os.fstat(fd).st_size >= HEADER_BYTES:
                self._map = mmap.mmap(fd, HEADER_BYTES, access=mmap.ACCESS_READ)
        except OSError:
            self._map = None
        finally:
            os.close(fd)

    def header(self) -> bytes | None:
        """Return the header as it is now (None when nothing is watched)."""
        found = self._map
        return None if found is None else found[:HEADER_BYTES]

    def close(self) -> None:
        """Unmap the header."""
        if self._map is not None:
            self._map.close()
            self._map = None
