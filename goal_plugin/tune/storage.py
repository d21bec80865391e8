"""Local experiment storage whose files are only ever replaced by complete ones.

Ray Tune writes the experiment state (trials, searcher) into a staging folder
and a background thread copies that folder into storage, file by file, in
place. Two races follow, both seen here: a driver killed during the copy
leaves a truncated ``experiment_state-*.json``; and the copy can read a staging
file while the driver is rewriting it, so even a finished copy can be torn or
empty. Either leaves an experiment that no resume can read.

This filesystem writes every file under a temporary name and renames it into
place when it is closed, and only if the content is complete: JSON must parse
(a JSON-lines file must end with a complete line), a pickle must be a whole
opcode stream (checked with ``pickletools``, which executes nothing), and an
empty file never replaces a non-empty one. Otherwise the previous complete
version stays, and the next copy brings the new one.

A trial's checkpoint folder that Ray deletes (it keeps the newest few) is
emptied instead, so that a restored state naming it still restores the trial.
"""

from __future__ import annotations

import json
import os
import pickletools
import re
import shutil
import tempfile

import pyarrow
import pyarrow.fs as pafs

CHECKPOINT_FOLDER = re.compile(r"checkpoint_\d+")


class _ReplaceOnClose:
    """A binary file handle that becomes ``path`` only when closed."""

    def __init__(self, path: str):
        self.path = path
        directory = os.path.dirname(path) or "."
        fd, self.temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        self.handle = os.fdopen(fd, "wb")

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


class AtomicLocalHandler(pafs.FileSystemHandler):
    """``pyarrow.fs.PyFileSystem`` handler: the local filesystem, atomic writes."""

    def __init__(self) -> None:
        self.local = pafs.LocalFileSystem()

    def __eq__(self, other) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __ne__(self, other) -> bool:
        return not self == other

    def __reduce__(self):  # Ray ships the filesystem to its workers
        return (AtomicLocalHandler, ())

    def get_type_name(self) -> str:
        return "goal_plugin_atomic_local"

    def normalize_path(self, path: str) -> str:
        return self.local.normalize_path(path)

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        if CHECKPOINT_FOLDER.fullmatch(os.path.basename(path.rstrip("/"))):
            # Ray drops a trial's older checkpoints, but the experiment state a killed
            # driver left may still name one (Ray then refuses to restore the trial):
            # keep the folder, empty; the trainable resumes from its newest sibling.
            self.local.delete_dir_contents(path, missing_dir_ok=True)
            return
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of the filesystem root")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        target = _ReplaceOnClose(dest)
        with open(src, "rb") as source:
            shutil.copyfileobj(source, target)
        target.close()

    def open_input_stream(self, path: str):
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str):
        return self.local.open_input_file(path)

    def open_output_stream(self, path: str, metadata):
        return pyarrow.PythonFile(_ReplaceOnClose(path), mode="w")

    def open_append_stream(self, path: str, metadata):
        return self.local.open_append_stream(path)


def atomic_local_filesystem() -> pafs.FileSystem:
    return pafs.PyFileSystem(AtomicLocalHandler())
