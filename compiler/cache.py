"""Where stepc keeps what it can always rebuild: the parser tables, the compiled templates.

Owns the location and the rule that a cache only ever saves time. The directory is
`$STEPC_CACHE_DIR`, else `$XDG_CACHE_HOME/stepc`, else `~/.cache/stepc`: the user's,
never the installed package's (often read-only) and never a shared temporary
directory (another user's file there could be read as our parser). When the directory
cannot be made or written, `cache_dir()` is None and every run builds the parser and
templates in memory: slower (about 0.1 s), the same output. A file in it is keyed by
everything it was built from, and checked when read (Lark and Jinja each store the
digest of their source and rebuild on a mismatch).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path


@functools.cache
def cache_dir() -> Path | None:
    """The writable cache directory, made if needed; None when there is none."""
    try:
        path = _configured_dir()
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # RuntimeError: no home directory to be found
        return None
    return path if os.access(path, os.W_OK | os.X_OK) else None


def _configured_dir() -> Path:
    if os.environ.get("STEPC_CACHE_DIR"):
        return Path(os.environ["STEPC_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "stepc"
    return Path.home() / ".cache" / "stepc"


def cache_file(kind: str, *sources: str) -> str | None:
    """The path for a `kind` of file built from `sources` (and this Python), or None."""
    directory = cache_dir()
    if directory is None:
        return None
    digest = hashlib.sha256("\0".join((*sources, sys.version)).encode("utf-8"))
    return str(directory / f"{kind}-{digest.hexdigest()[:20]}")
