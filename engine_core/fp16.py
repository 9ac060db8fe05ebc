"""FP16 facts, in one place: the largest finite value and which magnitudes round to zero.

float16 rounds to nearest even: the smallest subnormal is 2^-24 (5.96e-8); a nonzero magnitude up to and
including half of it (2^-25, 2.98e-8) rounds to 0, anything above rounds to at least 2^-24. Finite magnitudes above
65504 do not fit (from 65520 on they become inf).
"""

from __future__ import annotations

import numpy as np

FP16_MAX = 65504.0
"""Largest finite float16."""
FP16_SMALLEST_SUBNORMAL = 2.0**-24
FP16_FLUSH = 2.0**-25
"""Nonzero magnitudes ``<=`` this become 0 in float16."""


def flushes_to_zero(magnitude: np.ndarray) -> np.ndarray:
    """Mask of nonzero magnitudes (``|x|``) that float16 rounds to 0."""
    return (magnitude > 0) & (magnitude <= FP16_FLUSH)
