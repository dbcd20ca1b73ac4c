"""What a venue says about one tradable symbol."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    volume_step: Decimal
    volume_min: Decimal
    volume_max: Decimal
    contract_size: Decimal
    price_digits: int

    def round_volume_down(self, volume: Decimal) -> Decimal:
        """Round down to the volume step: never trade more than asked."""
        steps = (volume / self.volume_step).to_integral_value(rounding=ROUND_DOWN)
        return (steps * self.volume_step).quantize(self.volume_step)

    def is_on_step(self, volume: Decimal) -> bool:
        return (volume / self.volume_step) % 1 == 0
