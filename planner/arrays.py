"""Two array helpers the planner's sums and segment lists need, fast and exact."""

from __future__ import annotations

import numpy as np

INT64_SAFE = 2**62  # below this, an int64 product or sum cannot overflow


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """The distinct values of `x`, ascending (np.unique's result; numpy 2's hash-based unique
    is an order of magnitude slower on the few thousand integers a plan has)."""
    s = np.sort(np.asarray(x).ravel())
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if s.size else s


def exact_dot(*factors: np.ndarray) -> int:
    """sum of the elementwise product of `factors`, exactly: in int64 where no product or sum
    can overflow (the bound says so), else in Python integers."""
    size = factors[0].size
    if size == 0:
        return 0
    bound = size
    for f in factors:
        bound *= max(int(np.abs(f).max()), 1)
    if bound < INT64_SAFE:
        product = factors[0].astype(np.int64)
        for f in factors[1:]:
            product = product * f.astype(np.int64)
        return int(product.sum())
    product = factors[0].astype(object)
    for f in factors[1:]:
        product = product * f.astype(object)
    return int(product.sum())
