"""Splitting an amount over co-funding shares without losing a cent.

DESIGN.md "Co-funding and rounding": each share gets floor(a * w / W); the
cents left over go one by one to the shares with the largest remainders (ties:
the order the shares were defined). The parts always sum to ``a``.

Rounding drifts the shares' remaining balances away from their exact
proportions, so the last cents of a voucher may not split by basis points
within what each share still holds. ``split_capped`` then moves the overflow
to the shares that still have room, in definition order: a voucher can always
spend exactly its total balance, and no share is overdrawn.

``split_within_caps`` splits the unspent rest of a closed fund over its
funding sources, pro rata to what each may still get back (its net grant).
"""

from __future__ import annotations

from collections.abc import Sequence

BP_TOTAL = 10_000


def split_proportional(amount: int, weights: Sequence[int]) -> list[int]:
    if amount < 0:
        raise ValueError("amount must not be negative")
    total = sum(weights)
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative with a positive sum")
    parts = [amount * w // total for w in weights]
    remainders = [amount * w % total for w in weights]
    left = amount - sum(parts)
    # largest remainder first; ties in definition order (sorted is stable)
    for i in sorted(range(len(weights)), key=lambda i: -remainders[i])[:left]:
        parts[i] += 1
    return parts


def split_by_bp(amount: int, bps: Sequence[int]) -> list[int]:
    if sum(bps) != BP_TOTAL:
        raise ValueError("basis points must sum to 10,000")
    return split_proportional(amount, bps)


def split_capped(amount: int, bps: Sequence[int], caps: Sequence[int]) -> list[int] | None:
    """Split by basis points, then move any part over its share's cap to the
    shares with room. None when the caps together are short of ``amount``."""
    if amount > sum(max(c, 0) for c in caps):
        return None
    parts = split_by_bp(amount, bps)
    overflow = 0
    for i, cap in enumerate(caps):
        if parts[i] > cap:
            overflow += parts[i] - max(cap, 0)
            parts[i] = max(cap, 0)
    for i, cap in enumerate(caps):
        if overflow == 0:
            break
        room = cap - parts[i]
        if room > 0:
            take = min(room, overflow)
            parts[i] += take
            overflow -= take
    assert overflow == 0
    assert sum(parts) == amount
    return parts


def split_within_caps(amount: int, caps: Sequence[int]) -> list[int]:
    """Split ``amount`` pro rata to ``caps`` by the largest-remainder rule (ties: in order).

    No part exceeds its cap: a part is at most its exact share rounded up, and with
    ``amount <= sum(caps)`` that share is at most the cap; a cap of 0 gets nothing.
    """
    if amount < 0 or any(c < 0 for c in caps):
        raise ValueError("amount and caps must not be negative")
    if amount > sum(caps):
        raise ValueError(f"{amount} is more than the caps allow ({sum(caps)})")
    if amount == 0:
        return [0] * len(caps)
    parts = split_proportional(amount, caps)
    assert sum(parts) == amount
    assert all(0 <= p <= c for p, c in zip(parts, caps, strict=True))
    return parts
