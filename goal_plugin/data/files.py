"""File-level helpers of the on-disk datasets: the error type and list-file reading."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class DataError(ValueError):
    """A dataset file that is missing or does not hold what its layout promises.

    The message names the path, what was expected there, the layout assumed and
    what was found; ``path`` and ``missing`` (the file does not exist) are kept for
    the per-split counts of ``check_data`` and ``skip_missing``.
    """

    def __init__(
        self,
        path: Path | str,
        expected: str | None = None,
        layout: str | None = None,
        found: str = "",
    ):
        # One argument: a finished message (how a DataLoader worker re-raises it in the main process).
        super().__init__(
            str(path)
            if expected is None
            else f"{path}: expected {expected} ({layout} layout), found {found}"
        )
        self.path, self.expected, self.layout, self.found = str(path), expected, layout, found
        self.missing = found in (MISSING, MISSING_DIR)

    def __reduce__(self):  # picklable with its fields, for DataLoader workers and Ray
        return type(self), (self.path, self.expected, self.layout, self.found)

    def one_line(self) -> str:
        """The message alone, also when a DataLoader worker wrapped it in its traceback."""
        last = str(self).strip().splitlines()[-1]
        return last.split(f"{type(self).__name__}: ", 1)[-1]


MISSING = "the file does not exist"
MISSING_DIR = "the folder does not exist"


def require_root(root: str | Path | None, dataset: str, layout_help: str) -> Path:
    """``root`` as a Path; a missing or unset root is an error that says what should be there."""
    if root is None:
        raise ValueError(
            f"dataset {dataset!r} reads files: set data_root to the folder holding {layout_help}"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"data_root {str(path)!r} of dataset {dataset!r} is not a folder; expected {layout_help}"
        )
    return path


def read_text(path: Path, layout: str, expected: str) -> str:
    """A text file's content (a byte-order mark dropped); missing or unreadable is a DataError."""
    if not path.is_file():
        raise DataError(path, expected, layout, MISSING)
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(path, expected, layout, f"unreadable text ({error})") from None


def read_lines(path: Path, layout: str, expected: str) -> list[str]:
    """Non-empty lines of a list file; a byte-order mark and CRLF line ends are accepted."""
    return [line.strip() for line in read_text(path, layout, expected).splitlines() if line.strip()]


def line_error(path: Path, number: int, line: str, expected: str, layout: str) -> DataError:
    return DataError(f"{path}, line {number}", expected, layout, repr(line))


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` as ``path``, written under a temporary name and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
