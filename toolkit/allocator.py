"""The C allocator's settings for training on CPU: glibc keeps the memory a step frees for the next step."""

import ctypes
import platform

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def reuse_freed_memory() -> bool:
    """glibc malloc: keep the memory a process frees for its own reuse instead of handing it back to the OS.

    By default glibc maps every block over 32 MB (gradients of a GPT-2 embedding: 154 MB; saved activations of long
    sequences) separately and unmaps it on free, and trims the heap's free top, so each training step faults the same
    memory in again, page by page. Where page faults are slow (virtual machines: 10-45 us each here) that is up to
    half of a CPU step. Process-wide and not undone; peak RSS can grow where freed blocks do not fit later requests.
    Returns False (and changes nothing) outside glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))


# The same settings through the environment, for a process that does not call reuse_freed_memory itself (glibc reads
# them at start-up).
REUSE_FREED_MEMORY_ENVIRONMENT = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**62)}


__all__ = ["REUSE_FREED_MEMORY_ENVIRONMENT", "reuse_freed_memory"]
