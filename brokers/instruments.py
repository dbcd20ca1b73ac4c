"""The instruments a Paper account can trade.

Paper is our own venue, so this catalogue is its "exchange info". Every
symbol is quoted in USD, which is why Paper accounts keep their balance in
USD or USDT.
"""

from decimal import Decimal

from copier.core import Instrument

D = Decimal

PAPER_INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        Instrument("EURUSD", D("0.01"), D("0.01"), D("100"), D("100000"), 5),
        Instrument("GBPUSD", D("0.01"), D("0.01"), D("100"), D("100000"), 5),
        Instrument("AUDUSD", D("0.01"), D("0.01"), D("100"), D("100000"), 5),
        Instrument("XAUUSD", D("0.01"), D("0.01"), D("50"), D("100"), 2),
        Instrument("XAGUSD", D("0.01"), D("0.01"), D("50"), D("5000"), 3),
        Instrument("BTCUSD", D("0.01"), D("0.01"), D("20"), D("1"), 2),
        Instrument("ETHUSD", D("0.01"), D("0.01"), D("200"), D("1"), 2),
        Instrument("US500", D("0.1"), D("0.1"), D("500"), D("1"), 2),
    )
}


def paper_instrument(symbol: str) -> Instrument | None:
    return PAPER_INSTRUMENTS.get(symbol.strip().upper())
