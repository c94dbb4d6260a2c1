"""Object bytes on local disk: `<root>/objects/<xx>/<version uuid>`, one file per version.

An object's name never touches the filesystem. A write receives into `<root>/tmp`
(counted, hashed, fsync'd), then renames the file to its new version's path before the
row naming that version is written, so no row points at a missing file. A version's file
is removed only after the transaction that dropped its row committed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO

from planwise.storage.errors import too_large

CHUNK_BYTES = 64 * 1024
TEMP_MAX_AGE_SECONDS = 24 * 3600
SWEEP_EVERY_SECONDS = 15 * 60


class Upload:
    """Bytes being received into a temporary file, counted and hashed as they come.

    As a context manager: the temporary file is discarded if the block fails.
    """

    def __init__(self, directory: Path, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.hash = hashlib.sha256()
        handle, name = tempfile.mkstemp(dir=directory, prefix="upload-")
        self.path = Path(name)
        self.file: IO[bytes] = os.fdopen(handle, "wb")

    def __enter__(self) -> Upload:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None:
            self.discard()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)
        self.hash.update(chunk)
        self.file.write(chunk)

    def copy_from(self, source: IO[bytes]) -> None:
        """All of `source`, then `finish`."""
        while chunk := source.read(CHUNK_BYTES):
            self.write(chunk)
        self.finish()

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

    @property
    def etag(self) -> str:
        return f'"{self.hash.hexdigest()}"'


class BlobStore:
    """Object files by version; nothing from a request ever names a path here."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.temporary = root / "tmp"
        self.next_sweep = 0.0  # `time.monotonic()`: the first write after start sweeps

    def ensure(self) -> None:
        for directory in (self.root, self.objects, self.temporary):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path_of(self, version: uuid.UUID) -> Path:
        hex_name = uuid.UUID(str(version)).hex
        path = (self.objects / hex_name[:2] / hex_name).resolve()
        if not path.is_relative_to(self.objects.resolve()):  # cannot happen; never trust it
            raise RuntimeError(f"object path {path} escapes {self.objects}")
        return path

    def new_upload(self, limit: int) -> Upload:
        self.ensure()
        return Upload(self.temporary, limit)

    def place(self, upload: Upload) -> uuid.UUID:
        """Move a finished upload to a new version's path, atomically (rename)."""
        version = uuid.uuid4()
        target = self.path_of(version)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(upload.path, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return version

    def open(self, version: uuid.UUID) -> IO[bytes]:
        """The version's file, open: it stays readable if the file is removed meanwhile."""
        return self.path_of(version).open("rb")

    def remove(self, version: uuid.UUID) -> None:
        self.path_of(version).unlink(missing_ok=True)

    def sweep_due(self) -> bool:
        """Whether to sweep temporary files now: at the first write after start, then at
        most once every `SWEEP_EVERY_SECONDS` (not on every write)."""
        now = time.monotonic()
        if now < self.next_sweep:
            return False
        self.next_sweep = now + SWEEP_EVERY_SECONDS
        return True

    def sweep_temporary(self) -> None:
        """Remove the temporary files of uploads a crash abandoned (older than a day: no
        upload runs that long)."""
        if not self.temporary.is_dir():
            return
        cutoff = time.time() - TEMP_MAX_AGE_SECONDS
        for entry in self.temporary.iterdir():
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink(missing_ok=True)
