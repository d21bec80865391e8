"""Experiment storage whose files are only ever replaced by complete ones.

Ray Tune writes the experiment state (trials, searcher) into a staging folder
and a background thread copies that folder into storage, file by file, in
place. Two races follow, both seen here: a driver killed during the copy
leaves a truncated ``experiment_state-*.json``; and the copy can read a staging
file while the driver is rewriting it, so even a finished copy can be torn or
empty. Either leaves an experiment that no resume can read.

This filesystem wraps the storage's own (a local folder, or any store pyarrow
opens from a URI: S3, GCS, ...). It writes every file in full before it
becomes visible (locally under a temporary name renamed into place; on an
object store as one upload when the file is closed), and only if the content
is complete: JSON must parse (a JSON-lines file must end with a complete line),
a pickle must be a whole opcode stream (checked with ``pickletools``, which
executes nothing), and an empty file never replaces a non-empty one. Otherwise
the previous complete version stays, and the next copy brings the new one.

A trial's checkpoint folder that Ray deletes (it keeps the newest few) is
emptied instead, so that a restored state naming it still restores the trial.
"""

from __future__ import annotations

import json
import os
import pickletools
import posixpath
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow
import pyarrow.fs as pafs

from goal_plugin import uris

CHECKPOINT_FOLDER = re.compile(r"checkpoint_\d+")


class _WriteOnClose:
    """A binary file handle written to ``self.handle``; ``close`` decides what becomes of it."""

    @property
    def closed(self) -> bool:
        return self.handle.closed

    def write(self, data) -> int:
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def tell(self) -> int:
        return self.handle.tell()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


class _ReplaceOnClose(_WriteOnClose):
    """A local file that becomes ``path`` only when closed, and only if complete."""

    def __init__(self, path: str):
        self.path = path
        directory = os.path.dirname(path) or "."
        fd, self.temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        self.handle = os.fdopen(fd, "wb")

    def close(self) -> None:
        if self.handle.closed:
            return
        self.handle.close()
        with open(self.temporary, "rb") as written:
            data = written.read()
        if is_complete(self.path, data, replaces=os.path.exists(self.path)):
            os.replace(self.temporary, self.path)
        else:
            os.remove(self.temporary)


def is_complete(path: str, data: bytes, *, replaces: bool) -> bool:
    """Whether ``data`` is a whole file of its kind (see the module docstring)."""
    if not data:
        return not replaces
    if path.endswith(".json"):
        try:
            json.loads(data)
            return True
        except ValueError:
            pass
        if not data.endswith(b"\n"):
            return False
        try:  # JSON lines: every line is written whole, so check the last one
            json.loads(data.rstrip(b"\n").rsplit(b"\n", 1)[-1])
            return True
        except ValueError:
            return False
    if path.endswith(".pkl"):
        try:
            for _ in pickletools.genops(data):
                pass
            return True
        except Exception:  # pickletools raises ValueError or others on a torn stream
            return False
    return True


class _UploadOnClose(_WriteOnClose):
    """A file uploaded to ``path`` on ``filesystem`` when closed, and only if complete."""

    def __init__(self, filesystem: pafs.FileSystem, path: str):
        self.filesystem, self.path = filesystem, path
        self.handle = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)

    def close(self) -> None:
        if self.handle.closed:
            return
        with self.handle:
            empty = self.handle.tell() == 0
            self.handle.seek(0)
            if empty or self.path.endswith(CHECKED_KINDS):  # only these need their content checked
                data = self.handle.read()
                replaces = empty and self.filesystem.get_file_info(self.path).type == pafs.FileType.File
                if not is_complete(self.path, data, replaces=replaces):
                    return
                self.handle.seek(0)
            with self.filesystem.open_output_stream(self.path) as stream:
                shutil.copyfileobj(self.handle, stream, CHUNK_BYTES)


CHECKED_KINDS = (".json", ".pkl")  # what is_complete reads beyond emptiness
SPOOL_BYTES = 64 * 1024 * 1024  # larger files (checkpoints of big models) wait on disk, not in memory
CHUNK_BYTES = 8 * 1024 * 1024


class CompleteFilesHandler(pafs.FileSystemHandler):
    """``pyarrow.fs.PyFileSystem`` handler: ``base`` (any pyarrow filesystem), with
    writes that replace a file only by a complete one (see the module docstring)."""

    def __init__(self, base: pafs.FileSystem) -> None:
        self.base = _uploads_on_calling_thread(base)
        self.local = isinstance(base, pafs.LocalFileSystem)

    def __eq__(self, other) -> bool:
        return isinstance(other, CompleteFilesHandler) and self.base.equals(other.base)

    def __ne__(self, other) -> bool:
        return not self == other

    def __reduce__(self):  # Ray ships the filesystem to its workers
        return (CompleteFilesHandler, (self.base,))

    def get_type_name(self) -> str:
        return f"goal_plugin_complete_files+{self.base.type_name}"

    def normalize_path(self, path: str) -> str:
        return self.base.normalize_path(path)

    def get_file_info(self, paths):
        return self.base.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.base.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.base.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        if CHECKPOINT_FOLDER.fullmatch(os.path.basename(path.rstrip("/"))):
            # Ray drops a trial's older checkpoints, but the experiment state a killed
            # driver left may still name one (Ray then refuses to restore the trial):
            # keep the folder, empty; the trainable resumes from its newest sibling.
            self.base.delete_dir_contents(path, missing_dir_ok=True)
            return
        self.base.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.base.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of the filesystem root")

    def delete_file(self, path: str) -> None:
        self.base.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.base.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        if not self.local:  # a copy inside the store: its source is already complete
            self.base.copy_file(src, dest)
            return
        target = _ReplaceOnClose(dest)
        with open(src, "rb") as source:
            shutil.copyfileobj(source, target)
        target.close()

    def open_input_stream(self, path: str):
        return self.base.open_input_stream(path)

    def open_input_file(self, path: str):
        return self.base.open_input_file(path)

    def open_output_stream(self, path: str, metadata):
        writer = _ReplaceOnClose(path) if self.local else _UploadOnClose(self.base, path)
        return pyarrow.PythonFile(writer, mode="w")

    def open_append_stream(self, path: str, metadata):
        return self.base.open_append_stream(path)


def _uploads_on_calling_thread(base: pafs.FileSystem) -> pafs.FileSystem:
    """``base``, an S3 filesystem made to upload on the calling thread.

    pyarrow copies a folder (as Ray does into storage) on its I/O threads, and so
    calls this handler's writes there; an S3 upload that waits for another I/O
    thread (pyarrow's default, background writes) then waits for ever once every
    I/O thread is such a copy. Seen here: a sweep hung at its first state upload.
    """
    if not isinstance(base, pafs.S3FileSystem):
        return base
    _, (options,) = base.__reduce__()  # the filesystem's own options, as pickling rebuilds it
    return pafs.S3FileSystem(**{**options, "background_writes": False})


def complete_files_filesystem(base: pafs.FileSystem) -> pafs.FileSystem:
    return pafs.PyFileSystem(CompleteFilesHandler(base))


def atomic_local_filesystem() -> pafs.FileSystem:
    return complete_files_filesystem(pafs.LocalFileSystem())


def move_folder(filesystem: pafs.FileSystem, source: str, destination: str) -> None:
    """Rename a local folder; an object store renames no folders: copy, then delete."""
    handler = getattr(filesystem, "handler", None)
    if isinstance(handler, CompleteFilesHandler) and handler.local:
        filesystem.create_dir(posixpath.dirname(destination), recursive=True)
        filesystem.move(source, destination)
        return
    pafs.copy_files(source, destination, source_filesystem=filesystem, destination_filesystem=filesystem)
    filesystem.delete_dir(source)


@dataclass(frozen=True)
class Storage:
    """Where a sweep keeps its experiments: ``location`` as the user gave it (a
    local folder, resolved, or a URI), ``path`` on ``filesystem``, which writes
    complete files only."""

    location: str
    filesystem: pafs.FileSystem
    path: str

    def experiment(self, name: str) -> tuple[str, str]:
        """The experiment ``name``'s location (folder or URI) and its path on ``filesystem``."""
        location = uris.join(self.location, name) if uris.is_uri(self.location) else f"{self.location}/{name}"
        return location, f"{self.path.rstrip('/')}/{name}"

    def location_of(self, path: str) -> str:
        """A path on ``filesystem`` below ``path``, as the user would write it (without the URI's query)."""
        base = uris.split_query(self.location)[0] if uris.is_uri(self.location) else self.location
        return base + path[len(self.path.rstrip("/")):]


def open_storage(storage: str) -> Storage:
    """``--storage`` checked: a folder that is not a file, or a URI whose store answers,
    accepts the credentials and has the bucket; ``ValueError`` naming the option otherwise."""
    if not uris.is_uri(storage):
        path = Path(storage).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ValueError(f"--storage {storage}: is a file, not a folder")
        return Storage(str(path), atomic_local_filesystem(), str(path))
    try:
        base, path = uris.open_uri(storage)
    except ValueError as error:
        raise ValueError(f"--storage {storage}: {error}") from None
    return Storage(storage, complete_files_filesystem(base), path)
