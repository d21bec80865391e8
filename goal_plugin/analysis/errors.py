"""The one exception of the analysis package, and the output-folder check that raises it."""

from __future__ import annotations

import os
from pathlib import Path


class AnalysisError(ValueError):
    """Input that cannot be analysed; the message says what is wrong and where."""


def output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a folder to write into, created if needed; a file there is an error."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise AnalysisError(f"output folder {out} is an existing file; name a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AnalysisError(f"cannot create the output folder {out}: {error.strerror}") from None
    return out


def replaced_files(out: str | os.PathLike, write) -> tuple[list[Path], str]:
    """Run ``write()`` (it returns the paths it wrote into ``out``); returns those paths and
    a line naming the files that were there before and are now replaced ("" if none)."""
    folder = Path(out)
    before = set(folder.iterdir()) if folder.is_dir() else set()
    paths = write()
    replaced = [p.name for p in paths if p in before]
    line = f"replaced {', '.join(replaced)} in {folder}" if replaced else ""
    return paths, line
