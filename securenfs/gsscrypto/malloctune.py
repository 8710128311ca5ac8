"""glibc malloc settings that keep megabyte-sized message buffers off the mmap path.

A 1 MiB krb5p call allocates several buffers of about 1 MiB (the record, the token, the
plaintext, the reply).  glibc serves blocks above its mmap threshold (128 KiB at start,
raised dynamically up to 32 MiB) with fresh ``mmap`` and gives the memory back to the
kernel on ``free`` (``munmap``, or ``trim`` of the heap top beyond the trim threshold).
Every such buffer then costs a page fault per 4 KiB page on first touch, which is as much
work as AES-NI spends encrypting it: measured on the fast path, wrap+unwrap of 1 MiB runs
close to twice as fast with the thresholds below.

The same can be had without code by starting the server with
``MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456`` in its environment.
The cost is memory: freed buffers stay in the process (up to the trim threshold) for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from dataclasses import dataclass

log = logging.getLogger("securenfs.gsscrypto")

#: mallopt() parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Blocks below this come from the heap and are reused, not mapped per call.
MMAP_THRESHOLD = 64 << 20
#: Free memory at the heap top is returned to the kernel only beyond this.
TRIM_THRESHOLD = 256 << 20


@dataclass(slots=True, frozen=True)
class MallocTuning:
    """What :func:`tune_malloc_for_large_buffers` did (for the start-up log and tests)."""

    applied: bool
    detail: str


def tune_malloc_for_large_buffers(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> MallocTuning:
    """Raise glibc's mmap and trim thresholds for this process (see the module docstring).

    Does nothing (and says so) on a C library without ``mallopt`` (musl, macOS).  Safe to
    call more than once.
    """
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        detail = f"{name} has no mallopt(); large message buffers keep the default malloc settings"
        log.info("%s", detail)
        return MallocTuning(False, detail)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    ok_trim = mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    if ok_mmap and ok_trim:
        detail = (f"malloc: mmap threshold {mmap_threshold >> 20} MiB, trim threshold "
                  f"{trim_threshold >> 20} MiB (large Kerberos message buffers are reused)")
        log.info("%s", detail)
        return MallocTuning(True, detail)
    detail = (f"malloc tuning refused by the C library (mmap threshold {'ok' if ok_mmap else 'refused'}, "
              f"trim threshold {'ok' if ok_trim else 'refused'})")
    log.warning("%s", detail)
    return MallocTuning(ok_mmap or ok_trim, detail)
