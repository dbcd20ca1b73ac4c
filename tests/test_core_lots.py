"""The lot book: exchange fills become position events (pure, no I/O)."""

from __future__ import annotations

from decimal import Decimal

from copier.core.events import EventKind, Side
from copier.core.lots import Book, Fill, PositionSide

D = Decimal
OPEN, C = EventKind.POSITION_OPENED, EventKind.POSITION_CLOSED
P = EventKind.POSITION_PARTIALLY_CLOSED


def fill(
    tid: str, oid: str, side: Side, amount: str, price: str = "100", ts: int = 0, **kw: str
) -> Fill:
    return Fill(tid, oid, "BTC/USDT", side, D(amount), D(price), ts or int(tid), **kw)


def shape(events: list) -> list[tuple]:
    return [(e.kind, e.master_ref, e.side.value, str(e.volume), e.remaining_volume) for e in events]


def test_spot_buy_opens_sell_closes_fifo_and_partial() -> None:
    book = Book(spot=True)
    assert shape(book.apply(fill("1", "A", Side.BUY, "0.5"))) == [(OPEN, "A", "buy", "0.5", None)]
    assert shape(book.apply(fill("2", "B", Side.BUY, "0.25"))) == [(OPEN, "B", "buy", "0.25", None)]
    # Selling 0.6 closes A whole and 0.1 of B.
    events = book.apply(fill("3", "S", Side.SELL, "0.6", "110"))
    assert shape(events) == [(C, "A", "buy", "0.5", None), (P, "B", "buy", "0.1", D("0.15"))]
    assert all(e.price == D("110") for e in events)
    assert book.copied("BTC/USDT") == D("0.15")


def test_spot_sell_of_coins_held_before_watching_is_ignored() -> None:
    book = Book(spot=True)
    assert book.apply(fill("1", "S", Side.SELL, "1")) == []
    book.apply(fill("2", "A", Side.BUY, "0.5"))
    # 0.5 closes the copied lot; the other 0.5 sold older coins.
    assert shape(book.apply(fill("3", "S2", Side.SELL, "1"))) == [(C, "A", "buy", "0.5", None)]
    assert book.open_lots("BTC/USDT") == []


def test_a_replayed_trade_id_changes_nothing() -> None:
    book = Book(spot=True)
    first = fill("1", "A", Side.BUY, "0.5")
    assert book.apply(first)
    assert book.apply(first) == []
    # The REST resync after a reconnect overlaps what the websocket delivered.
    events = book.apply_all(
        [fill("2", "S", Side.SELL, "0.2"), first, fill("2", "S", Side.SELL, "0.2")]
    )
    assert shape(events) == [(P, "A", "buy", "0.2", D("0.3"))]


def test_fills_apply_in_time_order_whatever_order_they_arrive_in() -> None:
    book = Book(spot=True)
    events = book.apply_all(
        [fill("2", "S", Side.SELL, "0.5", ts=20), fill("1", "A", Side.BUY, "0.5", ts=10)]
    )
    assert [e.kind for e in events] == [OPEN, C]
    assert book.cursor_ms == 20


def test_later_fills_of_one_order_open_their_own_lots() -> None:
    book = Book(spot=True)
    refs = [
        e.master_ref for f in ("1", "2", "3") for e in book.apply(fill(f, "A", Side.BUY, "0.1"))
    ]
    assert refs == ["A", "A.2", "A.3"]


def test_one_way_derivatives_reverse_through_zero() -> None:
    book = Book(spot=False)
    book.apply(fill("1", "A", Side.BUY, "2"))
    events = book.apply(fill("2", "B", Side.SELL, "3", "90"))
    assert shape(events) == [(C, "A", "buy", "2", None), (OPEN, "B", "sell", "1", None)]
    assert book.copied("BTC/USDT") == D("-1")
    # Buying back adds nothing: it closes the short lot.
    assert shape(book.apply(fill("3", "C", Side.BUY, "1"))) == [(C, "B", "sell", "1", None)]


def test_baseline_is_reduced_last_and_never_copied() -> None:
    book = Book(spot=False)
    book.set_baseline("BTC/USDT", D("1"), PositionSide.NET)  # long 1 before watching
    book.apply(fill("1", "A", Side.BUY, "0.5"))
    # The first reduction closes the copied lot, then eats the baseline.
    assert shape(book.apply(fill("2", "S", Side.SELL, "0.7"))) == [(C, "A", "buy", "0.5", None)]
    assert book.baseline[Book.key("BTC/USDT", PositionSide.NET)] == D("0.8")
    # Selling the rest of the baseline and more reverses into a copied short.
    assert shape(book.apply(fill("3", "T", Side.SELL, "1"))) == [(OPEN, "T", "sell", "0.2", None)]


def test_hedge_mode_sides_have_their_own_lots() -> None:
    book = Book(spot=False)
    long_open = book.apply(fill("1", "L", Side.BUY, "1", position_side=PositionSide.LONG))
    short_open = book.apply(fill("2", "S", Side.SELL, "2", position_side=PositionSide.SHORT))
    assert shape(long_open + short_open) == [
        (OPEN, "L", "buy", "1", None),
        (OPEN, "S", "sell", "2", None),
    ]
    # A sell on the long side closes the long lot; the short is untouched.
    closed = book.apply(fill("3", "X", Side.SELL, "1", position_side=PositionSide.LONG))
    assert shape(closed) == [(C, "L", "buy", "1", None)]
    assert book.copied("BTC/USDT", PositionSide.SHORT) == D("-2")
    # More than the long side holds does not reverse in hedge mode.
    assert book.apply(fill("4", "Y", Side.SELL, "1", position_side=PositionSide.LONG)) == []


def test_state_round_trips_through_a_plain_dict() -> None:
    book = Book(spot=False)
    book.set_baseline("ETH/USDT", D("-3"), PositionSide.NET)
    book.apply(fill("1", "A", Side.BUY, "0.5"))
    book.apply(fill("2", "A", Side.BUY, "0.25"))
    again = Book.from_dict(book.to_dict())
    assert again.to_dict() == book.to_dict()
    assert again.apply(fill("1", "A", Side.BUY, "0.5")) == []  # still deduplicated
    assert [e.master_ref for e in again.apply(fill("3", "A", Side.BUY, "1"))] == ["A.3"]
    assert again.symbols() == {"BTC/USDT", "ETH/USDT"}


def test_old_trade_ids_are_forgotten_behind_the_window() -> None:
    book = Book(spot=True)
    for i in range(100):
        book.apply(fill(str(i + 1), f"O{i}", Side.BUY, "0.01", ts=1_000 + i))
    book.apply(fill("999", "Z", Side.BUY, "0.01", ts=1_000 + 11 * 60 * 1000))
    assert set(book.seen) == {"999"}


def test_fills_from_before_watching_are_history() -> None:
    book = Book(spot=True, start_ms=5_000)
    assert book.apply(fill("1", "A", Side.BUY, "1", ts=4_999)) == []
    assert book.apply(fill("2", "B", Side.BUY, "1", ts=5_000))
    assert book.resync_since() == 5_000
    book.apply(fill("3", "C", Side.BUY, "1", ts=500_000))
    assert book.resync_since() == 500_000 - 2 * 60 * 1000
