"""Keep the memory an update frees for the next update (glibc malloc on Linux).

glibc serves large blocks with ``mmap`` and gives freed memory back to the OS once the
free top of the heap exceeds a trim threshold; both thresholds adapt to the blocks seen,
up to a few MiB. A learner's update allocates and frees activations of several MiB each
(IQN on MinAtar: 1,024 rows x 1,600 features, 6.5 MB per tensor), so without more room
every update maps fresh pages that the kernel must zero. Measured on a 5,000-step MinAtar
IQN run (one CPU thread): 2.95M minor page faults and 11 of 81 s in the kernel; with the
thresholds below, 0.11M faults, 1 s in the kernel and 65 s in all (docs/benchmarks.md).

``hold_freed_memory`` sets ``M_MMAP_THRESHOLD`` to 32 MiB (glibc's largest) and
``M_TRIM_THRESHOLD`` to 1 GiB with ``mallopt``: blocks up to 32 MiB come from the heap
and freed memory stays in the process, so its resident size stays near its peak instead
of shrinking between updates. It changes no result, only where memory comes from. It is a
no-op on other platforms and C libraries, and when ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` is set in the environment (the user's own tuning wins).
Switch: ``trainer.hold_freed_memory`` (default true).
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024
ENV_KEYS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def hold_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if both were set,
    False where that does not apply (not Linux, no glibc, or set by the environment)."""
    if not sys.platform.startswith("linux") or any(k in os.environ for k in ENV_KEYS):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # another C library's mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_set = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mmap_set and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
