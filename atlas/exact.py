"""Sums whose result does not depend on the order of their terms: what lets an analysis's state
be merged from parts of a corpus and give, to the last bit, the one-pass result.

A float sum rounds after every term, so ((a + b) + c) and (a + (b + c)) can differ in the last
bit, and a corpus split into parts would give another atlas.json. ``ExactSum`` adds each term
(a per-sentence float64 value) as an integer number of 2⁻⁶⁰ in two int64 limbs: integer sums are
associative, so any split and any order give the same limbs, and ``value`` rounds them once to
the nearest float64 (for terms from 2⁻⁸ up, no bit of a term is lost, so that is the correctly
rounded sum; smaller terms lose what lies below 2⁻⁶⁰, the same way in every order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCALE_BITS = 60  # the resolution: 2⁻⁶⁰
LOW_BITS = 40  # the low limb holds the bits 2⁻⁶⁰ .. 2⁻²¹; the high limb 2⁻²⁰ and up
HIGH_BITS = SCALE_BITS - LOW_BITS
_MASK = (1 << LOW_BITS) - 1
_FAST = 2**53  # a high limb below this converts to float64 exactly
CARRY_EVERY = 1 << 20  # terms (each below 2⁴⁰ in the low limb) between carries: no overflow


class ExactSum:
    """An order-independent running sum of float64 arrays of one shape (module docstring).

    Terms must be finite; a sum stays exact while its magnitude is below 2⁴³ (8.8e12)."""

    def __init__(self, shape: tuple[int, ...] | int = ()):
        self.high = np.zeros(shape, np.int64)
        self.low = np.zeros(shape, np.int64)
        self.pending = 0  # terms added to ``low`` since its last carry

    @property
    def shape(self) -> tuple[int, ...]:
        return self.high.shape

    def add(self, terms: np.ndarray | float) -> None:
        scaled = np.asarray(terms, np.float64) * float(2**HIGH_BITS)  # exact: a power of two
        fraction, whole = np.modf(scaled)  # both exact
        self.high += whole.astype(np.int64)
        # |fraction| < 1: its bits below 2⁻⁶⁰ are dropped (toward zero)
        self.low += (fraction * float(2**LOW_BITS)).astype(np.int64)
        self.pending += 1
        if self.pending >= CARRY_EVERY:
            self._carry()

    def merge(self, other: ExactSum) -> None:
        self.high += other.high
        self.low += other.low
        self._carry()

    def _carry(self) -> None:
        """Move the low limb's whole multiples of 2⁻²⁰ into the high limb (0 ≤ low < 2⁴⁰ after)."""
        self.high += self.low >> LOW_BITS
        self.low &= _MASK
        self.pending = 0

    def value(self) -> np.ndarray:
        """The sum, rounded once to float64 (a float array of the sum's shape)."""
        self._carry()
        if np.all(np.abs(self.high) < _FAST):  # two exact floats; their sum rounds once
            return self.high * 2.0**-HIGH_BITS + self.low * 2.0**-SCALE_BITS
        pairs = zip(self.high.flat, self.low.flat, strict=True)
        exact = [(int(h) << LOW_BITS) | int(lo) for h, lo in pairs]
        return np.array([float(v) / 2.0**SCALE_BITS for v in exact]).reshape(self.shape)

    def state(self) -> dict[str, Any]:
        self._carry()
        return {"high": self.high, "low": self.low}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ExactSum:
        out = cls()
        out.high = np.array(state["high"], np.int64)
        out.low = np.array(state["low"], np.int64)
        return out
