"""The lucky wheel's draw, pure: a weighted choice among the segments that can still be won.

The caller passes a uniform random number in [0, 1) (from `secrets.SystemRandom` on the server),
so the draw is decided on the server and tests can pin it. A segment whose stock is gone is left
out of the draw; whether a drawn prize is really given is decided later, when the reservation
(after confirmation) takes one unit of stock, or finds none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    id: str
    label: str
    weight: int
    available: bool = True


def draw(segments: Sequence[Segment], r: float) -> Segment | None:
    """None when no segment has weight and stock left."""
    if not 0.0 <= r < 1.0:
        raise ValueError("r must be in [0, 1)")
    eligible = [s for s in segments if s.available and s.weight > 0]
    total = sum(s.weight for s in eligible)
    if total == 0:
        return None
    point = r * total
    for segment in eligible:
        if point < segment.weight:
            return segment
        point -= segment.weight
    return eligible[-1]  # float rounding at the very top of the range
