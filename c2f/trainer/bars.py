"""Whether the trainer draws its tqdm progress bars: on by default (what ``c2f train`` shows), off inside
``with bars(False):`` (``c2f.train(..., progress=False)``). A context variable, so it is per thread / task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_SHOWN: ContextVar[bool] = ContextVar("c2f_trainer_bars", default=True)


def shown() -> bool:
    """Whether progress bars are drawn in the current context."""
    return _SHOWN.get()


@contextmanager
def bars(show: bool) -> Iterator[None]:
    """Draw (or hide) the trainer's progress bars for the duration of the ``with`` block."""
    token = _SHOWN.set(show)
    try:
        yield
    finally:
        _SHOWN.reset(token)
