#!/usr/bin/python3
"""Fits the coefficients of the JIT's f32 tanh (backend/llvm/cg_math.c, cg_tanh_f32):
tanh x = x (a + R(x^2) / Q(x^2)) on [0, 9], Q monic of degree 4 and R of degree 3,
a + R(0) / Q(0) = 1, minimizing the largest relative error. The form is the rational
function P / Q of degrees 4 and 4 (a is P's leading coefficient, R = P - a Q), written so
Q's first step is an add and P's leading term an add after the division.

Lawson's iteration (scripts/minimax.py) on the linearized problem P(u) - f(u) Q(u) = 0,
f(u) = tanh(sqrt u) / sqrt u. a is rounded to f32 first; with a fixed, the problem in Q
and R is linear again, and their coefficients are rounded one at a time, highest power
first, with the rest refitted around each rounded one, so rounding them costs ~2e-8 of
relative error instead of ~1e-7. Last, R's constant is nudged until a + R(0) / Q(0)
rounds to 1, and the f32 evaluation (as the JIT does it, with multiply-adds) is measured
against tanh in double over every third float in [3e-5, 12].

    /usr/bin/python3 scripts/fit_tanh.py      (numpy and mpmath: Debian python3-numpy, python3-mpmath)
"""
import sys

import mpmath
import numpy as np

from minimax import fma, lawson

CLAMP = 9.0  # past 9, tanh x rounds to 1 in f32

x = np.concatenate([np.linspace(1e-4, CLAMP, 30000), np.geomspace(1e-4, 1, 3000)])
x.sort()
mpmath.mp.dps = 30
f = np.array([float(mpmath.tanh(mpmath.mpf(v)) / mpmath.mpf(v)) for v in x])
u = x * x


# P / Q, Q = u^4 + q3 u^3 + .. + q0, P = p4 u^4 + .. + p0, p0 = q0: unknowns q0 (= p0), p1..p4, q1..q3
cols = [1 - f] + [u**k for k in range(1, 5)] + [-f * u**k for k in range(1, 4)]


def pq_error(c):
    q = u**4 + c[0] + sum(c[4 + k] * u**k for k in range(1, 4))
    p = c[0] + sum(c[k] * u**k for k in range(1, 5))
    return 1 / (f * q), (p / q - f) / f


c, err = lawson(cols, f * u**4, pq_error, {})
print("P / Q in double: max relative error %.3g" % err, file=sys.stderr)
a = float(np.float32(c[4]))

# a + R / Q with a fixed: (f - a) Q - R = 0, linear in q0..q3, r1..r3 (r0 = q0 (1 - a))
cols = [f - 1] + [(f - a) * u**k for k in range(1, 4)] + [-u**k for k in range(1, 4)]


def r_error(c):
    q = u**4 + sum(c[k] * u**k for k in range(4))
    r = c[0] * (1 - a) + sum(c[3 + k] * u**k for k in range(1, 4))
    return 1 / (f * q), (a + r / q - f) / f


fixed = {}
for i in [None, 3, 6, 2, 5, 1, 4, 0]:  # highest powers first, Q's and R's in turn
    if i is not None:
        fixed[i] = float(np.float32(c[i]))
    c, err = lawson(cols, -(f - a) * u**4, r_error, fixed)
print("rounded to f32: max relative error %.3g (exact arithmetic)" % err, file=sys.stderr)
F = np.float32
q = [F(c[k]) for k in range(4)]  # constant term first
r = [F(c[0] * (1 - a))] + [F(c[3 + k]) for k in range(1, 4)]
a = F(a)
while F(F(r[0] / q[0]) + a) != 1:  # tiny x must come back as x
    r[0] = np.nextafter(r[0], F(np.inf) if F(F(r[0] / q[0]) + a) < 1 else F(-np.inf))
print("a = %.9g" % a)
print("q (highest power first) = 1, " + ", ".join("%.9g" % v for v in q[::-1]))
print("r (highest power first) = " + ", ".join("%.9g" % v for v in r[::-1]))


xs = np.arange(F(3e-5).view(np.int32), F(12).view(np.int32), 3, dtype=np.int32).view(np.float32)
xc = np.minimum(xs, F(CLAMP))
uu = xc * xc
den = uu + q[3]
num = np.full_like(uu, r[3])
for k in (2, 1, 0):
    den, num = fma(den, uu, q[k]), fma(num, uu, r[k])
y = xc * (num / den + a)
units = np.abs(y - np.tanh(xs.astype(np.float64))) / np.tanh(xs.astype(np.float64)) * 2**24
print("f32 evaluation: worst %.2f units of 2^-24 at x = %g, over %d floats" % (units.max(), xs[units.argmax()], len(xs)),
      file=sys.stderr)
