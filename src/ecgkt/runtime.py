"""Process-level performance settings that are not torch settings: the C allocator.

Why: glibc serves allocations above its mmap threshold (128 KiB, rising dynamically only up to the
largest chunk freed so far) with fresh `mmap` pages and returns memory to the kernel when the heap
top is freed. A training step allocates and frees tens of activation tensors of 4–33 MB; each
new one is then page-faulted in and zeroed by the kernel page by page, which on this machine cost
as much as the elementwise op that filled it (docs/performance.md). Raising the mmap threshold to
its maximum (32 MiB on 64-bit glibc) and the trim threshold keeps those blocks in the heap for reuse.

The cost is that freed memory is kept by the process instead of going back to the kernel (the heap
stays at its high-water mark): right for a training job or a model server, which reach their
steady-state working set in the first step, not for a long-lived process that peaks once. So the CLI
tunes (every `ecgkt` command), the library never does on import, and ECGKT_MALLOC_TUNING=0 opts out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses mmap thresholds above HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit systems.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024
OPT_OUT_VARIABLE = "ECGKT_MALLOC_TUNING"

_tuned = False


def tune_allocator() -> bool:
    """Keep activation-sized blocks in glibc's heap; True if the settings were applied.

    A no-op (False) on non-glibc platforms (macOS, Windows, musl), when ECGKT_MALLOC_TUNING=0, or if
    glibc rejects a value. Idempotent.
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get(OPT_OUT_VARIABLE, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    try:
        libc = ctypes.CDLL(libc_name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    applied = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    applied = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and applied
    _tuned = applied
    return applied
