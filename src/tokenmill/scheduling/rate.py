"""An event rate that forgets the past exponentially: cheap to update, no history kept."""

import math


class DecayingRate:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s  # the time constant: older events weigh 1/e less per window
        self._value = 0.0  # events per second, as of `_at`
        self._at = 0.0

    def add(self, now: float, events: float = 1.0) -> None:
        self._value = self.at(now) + events / self.window_s
        self._at = max(now, self._at)

    def at(self, now: float) -> float:
        """Events per second around `now`."""
        return self._value * math.exp(-max(0.0, now - self._at) / self.window_s)
