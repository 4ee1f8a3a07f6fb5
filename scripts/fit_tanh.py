#!/usr/bin/python3
"""Fits the coefficients of the JIT's f32 tanh (backend/llvm/cg_math.c, cg_tanh_f32):
tanh x = x P(x^2) / Q(x^2) on [0, 9], P and Q of degree 4, P(0) = Q(0) = 1,
minimizing the largest relative error.

Lawson's iteration on the linearized problem: each round solves the weighted least
squares P(u) - f(u) Q(u) = 0 (f(u) = tanh(sqrt u) / sqrt u), scaled by the previous Q so
the residual is the relative error, and multiplies each point's weight by its error, so
the weights gather where the error peaks (the minimax solution). The coefficients are
then rounded to f32 one at a time, highest power first, and the rest refitted around
each rounded one, so rounding them costs ~2e-8 of relative error instead of ~1e-7.

    /usr/bin/python3 scripts/fit_tanh.py      (numpy and mpmath: Debian python3-numpy, python3-mpmath)
"""
import sys

import mpmath
import numpy as np

CLAMP = 9.0  # past 9, tanh x rounds to 1 in f32
NP, NQ = 4, 4
NU = NP + 1 + NQ  # unknowns: p0..p4, q1..q4 (q0 = 1)

x = np.concatenate([np.linspace(1e-4, CLAMP, 30000), np.geomspace(1e-4, 1, 3000)])
x.sort()
mpmath.mp.dps = 30
f = np.array([float(mpmath.tanh(mpmath.mpf(v)) / mpmath.mpf(v)) for v in x])
u = x * x

A0 = np.zeros((len(u), NU))
for k in range(NP + 1):
    A0[:, k] = u**k
for k in range(1, NQ + 1):
    A0[:, NP + k] = -f * u**k


def solve(fixed, rounds=40):
    """The fit with the coefficients in `fixed` (index -> value) held: (coefficients, max relative error)."""
    w = np.ones_like(u)
    qprev = np.ones_like(u)
    free = [i for i in range(NU) if i not in fixed]
    for r in range(rounds):
        b = f.copy()
        for i, v in fixed.items():
            b -= A0[:, i] * v
        s = np.sqrt(w) / (f * qprev)
        a = A0[:, free] * s[:, None]
        scale = np.abs(a).max(axis=0)  # columns span 1 .. 81^4: scale them for the solver
        sol, *_ = np.linalg.lstsq(a / scale, b * s, rcond=None)
        coef = np.zeros(NU)
        for i, v in fixed.items():
            coef[i] = v
        coef[free] = sol / scale
        p, q = coef[:NP + 1], np.concatenate([[1.0], coef[NP + 1:]])
        qprev = np.polyval(q[::-1], u)
        err = (np.polyval(p[::-1], u) / qprev - f) / f
        if r >= 3:
            w = w * (np.abs(err) + 1e-12)
            w /= w.sum()
    return coef, np.abs(err).max()


fixed = {0: 1.0}
coef, err = solve(fixed)
print("fit in double: max relative error %.3g" % err, file=sys.stderr)
for i in [4, 8, 3, 7, 2, 6, 1, 5]:  # highest powers first, P's and Q's in turn
    fixed[i] = float(np.float32(coef[i]))
    coef, err = solve(fixed)
print("rounded to f32: max relative error %.3g (exact arithmetic)" % err, file=sys.stderr)
print("p (highest power first) =", ", ".join("%.9g" % np.float32(v) for v in coef[NP::-1]))
print("q (highest power first) =", ", ".join("%.9g" % np.float32(v) for v in coef[:NP:-1]) + ", 1")
