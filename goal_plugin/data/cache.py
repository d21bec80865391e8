"""An on-disk cache of computed audio features, shared safely by concurrent trials.

An entry's key is a hash of the source file (resolved path, size, modification
time in ns) and of the recipe's name and parameters, so an edited WAV or another
recipe never reads a stale entry. Entries are ``.npy`` files written to a temporary
name in the cache folder and moved into place with ``os.replace`` (atomic on one
file system): a reader sees a whole entry or none, and two trials computing the
same entry at once both write the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from goal_plugin.data.files import write_atomic


class FeatureCache:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"cache_dir {str(self.directory)!r} cannot be created: {error}"
            ) from None

    def key(self, source: Path, recipe: Mapping[str, object]) -> str:
        stat = source.stat()
        identity = {
            "path": str(source.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "recipe": dict(recipe),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def get(
        self, source: Path, recipe: Mapping[str, object], compute: Callable[[], Tensor]
    ) -> Tensor:
        """The cached tensor for (``source``, ``recipe``), computed and stored on a miss."""
        entry = self.directory / f"{self.key(source, recipe)}.npy"
        try:
            return torch.from_numpy(np.load(entry, allow_pickle=False))
        except (OSError, ValueError):  # no entry yet, or a damaged one: compute it (again)
            pass
        value = compute()
        buffer = io.BytesIO()
        np.save(buffer, value.numpy(), allow_pickle=False)
        write_atomic(entry, buffer.getvalue())
        return value
