"""CPU-heavy work off the event loop, on a small bounded pool of threads.

One event loop serves every request of a process: a handler that computes for a second (grep
over a session's files, HTML to Markdown of a 2 MiB page) delays ``/healthz`` and every other
tenant by that second. Such work runs here instead. The pool has one thread per core: more
would not finish the work sooner, and a tenant who starts many such requests at once queues
behind its own work instead of taking every thread of the loop's default executor (which
database drivers use too). RE2, ``hashlib`` and ``zlib`` release the GIL while they compute;
pure-Python work (bs4) shares it with the loop in 5 ms slices.

Functions passed in must not touch the event loop or a database connection.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="everloop-cpu")


async def run_cpu(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the CPU pool; the caller's task waits without blocking."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOL, functools.partial(fn, *args, **kwargs))
