"""What a venue says about one tradable symbol."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal


@dataclass(frozen=True, slots=True)
class Instrument:
    """Trading limits of a symbol at one venue.

    `tick_value` is what one `tick_size` price move is worth for one lot, in
    the account currency; risk sizing needs it.
    """

    symbol: str
    volume_step: Decimal
    volume_min: Decimal
    volume_max: Decimal
    contract_size: Decimal
    price_digits: int
    tick_size: Decimal | None = None
    tick_value: Decimal | None = None

    @property
    def point(self) -> Decimal:
        return Decimal(1).scaleb(-self.price_digits)

    @property
    def value_per_price_unit(self) -> Decimal:
        """Account-currency value of a 1.0 price move for one lot."""
        if self.tick_size and self.tick_value:
            return self.tick_value / self.tick_size
        return self.contract_size

    def round_volume_down(self, volume: Decimal) -> Decimal:
        """Round down to the volume step: never trade more than asked."""
        steps = (volume / self.volume_step).to_integral_value(rounding=ROUND_DOWN)
        return (steps * self.volume_step).quantize(self.volume_step)

    def round_volume(self, volume: Decimal) -> Decimal:
        steps = (volume / self.volume_step).to_integral_value(rounding=ROUND_HALF_EVEN)
        return (steps * self.volume_step).quantize(self.volume_step)

    def round_price(self, price: Decimal) -> Decimal:
        return price.quantize(self.point, rounding=ROUND_HALF_EVEN)

    def is_on_step(self, volume: Decimal) -> bool:
        return (volume / self.volume_step) % 1 == 0

    def volume_problem(self, volume: Decimal) -> str | None:
        """Why a venue would refuse `volume` lots of this symbol, or None."""
        if volume <= 0:
            return f"volume must be greater than 0, not {_fmt(volume)}"
        if volume < self.volume_min:
            return (
                f"{_fmt(volume)} lots is under {self.symbol}'s minimum of {_fmt(self.volume_min)}"
            )
        if volume > self.volume_max:
            return f"{_fmt(volume)} lots is over {self.symbol}'s maximum of {_fmt(self.volume_max)}"
        if not self.is_on_step(volume):
            return (
                f"{_fmt(volume)} lots is not a multiple of {self.symbol}'s volume step "
                f"{_fmt(self.volume_step)}"
            )
        return None


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")
