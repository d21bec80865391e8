"""The folder a run writes: ``config.json``, ``metrics.json`` and ``checkpoint/``.

A folder that already holds a run is never written over silently: it is
refused unless the run in it is the one being resumed, or the caller asks to
overwrite it (then the old run's files are removed first, so that the folder
never mixes two runs).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

RUN_FILES = ("config.json", "metrics.json", "checkpoint")


class RunFolderError(ValueError):
    """A run folder that cannot be used; the message names the folder."""


def claim_run_folder(
    folder: str | Path, *, resuming: bool = False, overwrite: bool = False
) -> Path:
    """Create ``folder`` (parents too) for a run and return it.

    Refused: an existing file of that name, and a folder that holds another
    run's files unless ``resuming`` (the run in it continues) or ``overwrite``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"output {str(folder)!r} is an existing file, not a folder")
    existing = [name for name in RUN_FILES if (folder / name).exists()]
    if existing and not resuming:
        if not overwrite:
            raise RunFolderError(
                f"output folder {str(folder)!r} already holds a run ({', '.join(existing)}); "
                "choose another folder, resume that run, or overwrite it (--overwrite)"
            )
        for name in existing:
            path = folder / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunFolderError(
            f"cannot create output folder {str(folder)!r}: {error.strerror}"
        ) from None
    return folder


def new_run_folder(root: str | Path, name: str) -> Path:
    """Create a fresh folder ``root/<name>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``, ...
    when taken, e.g. by a run started in the same second) and return it."""
    root = Path(root)
    base = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    number = 1
    while True:
        folder = root / (base if number == 1 else f"{base}-{number}")
        try:
            folder.mkdir(parents=True)  # atomic: two runs never share a folder
            return folder
        except FileExistsError:
            number += 1
        except OSError as error:
            raise RunFolderError(
                f"cannot create a run folder in {str(root)!r}: {error.strerror}"
            ) from None
