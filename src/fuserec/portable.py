"""Portable native code: pick numba's code-generation target before numba is first imported.

librosa's kernels are compiled by numba for the host CPU, named by LLVM (``znver4`` on AMD
Zen 4, ``rocketlake`` on some Xeons). With numba 0.68 / llvmlite 0.50 the code tuned for
``znver4`` crashed with a segmentation fault inside ``librosa.feature.chroma_stft``; the same
kernels compiled for a generic x86-64 level run correctly there. The CPU *features* (AVX-512
included) stay the host's, so only LLVM's per-model tuning is replaced, at no measurable cost
for these kernels.

:func:`choose_numba_target` runs when :mod:`fuserec` is imported. It sets ``NUMBA_CPU_NAME``
only on x86-64 and only when the user has not set it; the choice is recorded in
:data:`NUMBA_TARGET` and inherited by worker processes through the environment.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

#: CPU-flag sets of the x86-64 micro-architecture levels (as in /proc/cpuinfo)
_LEVELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("x86-64-v3", frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe",
                             "abm", "xsave", "sse4_2", "popcnt", "ssse3"})),
    ("x86-64-v2", frozenset({"sse4_2", "sse4_1", "ssse3", "popcnt", "cx16", "lahf_lm"})),
)

#: what this process decided: ``(value, origin)``, origin one of "user", "fuserec", "unset"
NUMBA_TARGET: tuple[str | None, str] = (None, "unset")


def cpu_flags() -> frozenset[str]:
    """The CPU flags /proc/cpuinfo lists (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def portable_x86_level(flags: frozenset[str]) -> str:
    """The highest x86-64 level whose flags the CPU has (``x86-64`` at least)."""
    for name, needed in _LEVELS:
        if needed <= flags:
            return name
    return "x86-64"


def choose_numba_target(environ: dict[str, str] | os._Environ = os.environ) -> tuple[str | None,
                                                                                       str]:
    """Set ``NUMBA_CPU_NAME`` to a portable x86-64 level unless the user set it.

    Returns ``(value, origin)``. Does nothing off x86-64. Called before numba is imported;
    if numba was already imported by someone else, its configuration is left as it is.
    """
    global NUMBA_TARGET
    if environ.get("NUMBA_CPU_NAME"):
        NUMBA_TARGET = (environ["NUMBA_CPU_NAME"], "user")
    elif platform.machine().lower() not in ("x86_64", "amd64") or "numba" in sys.modules:
        NUMBA_TARGET = (None, "unset")
    else:
        level = portable_x86_level(cpu_flags())
        environ["NUMBA_CPU_NAME"] = level
        NUMBA_TARGET = (level, "fuserec")
    return NUMBA_TARGET
