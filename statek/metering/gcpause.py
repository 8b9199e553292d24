"""Pause the cyclic garbage collector while building large tables of acyclic objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with automatic collection off (restored after, even on error).

    Building 100k price rows allocates a few hundred thousand tuples; the collector would otherwise
    scan the growing heap again and again, which doubles the load time. Nothing built here forms
    cycles, so nothing is leaked by postponing collection.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
