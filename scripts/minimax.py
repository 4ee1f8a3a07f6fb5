"""Lawson's iteration for the minimax fits of the JIT's inline f32 functions
(scripts/fit_tanh.py, scripts/fit_erf.py; backend/llvm/cg_math.c).

A rational function is fitted through its linearized problem, sum_k c_k cols[k] = rhs at
every point (P(u) - f(u) Q(u) = 0, rearranged), solved by weighted least squares; each
round scales the rows by the previous fit (so a row's residual is that point's relative
error) and multiplies each point's weight by its error, so the weights gather where the
error peaks, as they do in the minimax solution."""
import numpy as np


def lawson(cols, rhs, error_of, fixed, rounds=40):
    """Minimax fit of sum_k c_k cols[k] = rhs, the coefficients in `fixed` (index -> value)
    held. error_of(c) gives each point's row scale (to relative error) and its relative
    error. Returns (coefficients, largest relative error)."""
    coef = np.zeros(len(cols))
    for i, v in fixed.items():
        coef[i] = v
    free = [i for i in range(len(cols)) if i not in fixed]
    scale_rows, err = error_of(coef)
    if not free:
        return coef, np.abs(err).max()
    scale_rows, w = np.ones_like(rhs), np.ones_like(rhs)
    for r in range(rounds):
        b = rhs - sum(cols[i] * v for i, v in fixed.items())
        s = np.sqrt(w) * scale_rows
        a = np.stack([cols[i] for i in free], axis=1) * s[:, None]
        scale = np.abs(a).max(axis=0)  # the columns span many orders of magnitude: scale them for the solver
        sol, *_ = np.linalg.lstsq(a / scale, b * s, rcond=None)
        coef[free] = sol / scale
        scale_rows, err = error_of(coef)
        if r >= 3:
            w = w * (np.abs(err) + 1e-13)
            w /= w.sum()
    return coef, np.abs(err).max()


def fma(x, y, z):
    """f32 multiply-add: the product is exact in double; the sum rounds twice only in rare ties."""
    return (x.astype(np.float64) * y + z).astype(np.float32)
