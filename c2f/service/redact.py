"""What answers may show of server paths: nothing absolute, only paths relative to the configured roots.

``GET /models``, ``GET /jobs``, the status page and every error message go through these before they leave the
process, so that a caller learns neither where the artifact or data roots live nor which other paths exist.
"""

from __future__ import annotations

import contextlib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from c2f.service.settings import Settings

_ABSOLUTE_PATH_RE = re.compile(r"(?<![\w.:/-])/(?:[^\s'\"`,;:)\]}]+)")


@lru_cache(maxsize=64)
def _root_forms(root: str) -> tuple[str, ...]:
    """The absolute spellings of ``root`` a message may contain (as given, symlinks resolved), longest first."""
    path = Path(root).expanduser()
    forms = {str(path.absolute())}
    with contextlib.suppress(OSError, RuntimeError):
        forms.add(str(path.resolve()))
    return tuple(sorted((f for f in forms if f not in ("", ".", "/")), key=len, reverse=True))


def relative_to(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str | None:
    """``path`` relative to ``root`` (any spelling of it), or None when it is not inside."""
    text = str(path)
    for form in _root_forms(str(root)):
        if text == form:
            return "."
        if text.startswith(form + "/"):
            return text[len(form) + 1 :]
    return None


def scrub(text: str, settings: Settings) -> str:
    """``text`` with paths under the data or artifact root made relative to it, and any other absolute path
    replaced by ``<path>``."""
    for root in (str(settings.artifact_root), str(settings.data_root)):
        for form in _root_forms(root):
            text = text.replace(form + "/", "").replace(form, ".")
    return _ABSOLUTE_PATH_RE.sub("<path>", text)
