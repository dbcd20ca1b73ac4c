"""MT5 detector: the diff cost of one poll, for 0, 10, 100 and 1000 open positions.

The terminal agent calls `positions_get()` and `orders_get()` every 10 ms and
hands the answers to `brokers.mt5.detect.Detector.poll`. This measures that
call alone (the terminal's own answer time is not ours to measure here: the
`MetaTrader5` package is Windows-only). The rows are the package's shapes,
named tuples with the documented fields and order, and every poll gets new
tuples, as the terminal builds new ones for each answer.

Lines (one JSON object per line on stdout, logs on stderr):

- `mt5_diff`, one per level: the steady state, which is nearly every poll:
  each position's `price_current`, `profit`, `swap` and `time_update` moved,
  nothing else did, and no change may come out (checked). `p50_us`, `p99_us`
  (nearest rank) and `max_us` of `poll`, and `core_pct`: p50 as a share of
  one core at the default 10 ms interval (p50 µs / 10 000 µs).
- `mt5_diff_changes`, one per level and kind of change: polls where
  something happened. `sl`: one position's SL moves each poll (one
  POSITION_MODIFIED). `close_open`: one position closes and another opens
  each poll (POSITION_CLOSED, with the exit price from `closing_deal` over a
  `TradeDeal` history, then POSITION_OPENED). The count and kinds of
  changes are checked.

Each level also has `--orders` pending orders (default 5), which are part of
every diff. The garbage collector stays on, as in the agent.

Run: .venv/bin/python bench/mt5_detect.py [--positions 0,10,100,1000]
     [--samples 20000] [--warmup 2000] [--orders 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import namedtuple
from decimal import Decimal
from typing import Any

from _common import emit, load_average, log, percentile

from brokers.mt5.detect import Detector, closing_deal
from copier.core.events import EventKind

TradePosition = namedtuple(
    "TradePosition",
    "ticket time time_msc time_update time_update_msc type magic identifier reason volume "
    "price_open sl tp price_current swap profit symbol comment external_id",
)
TradeOrder = namedtuple(
    "TradeOrder",
    "ticket time_setup time_setup_msc time_done time_done_msc time_expiration type type_time "
    "type_filling state magic position_id position_by_id reason volume_initial volume_current "
    "price_open sl tp price_current price_stoplimit symbol comment external_id",
)
TradeDeal = namedtuple(
    "TradeDeal",
    "ticket order time time_msc type entry magic position_id reason volume price commission "
    "swap profit fee symbol comment external_id",
)

T0 = 1_767_600_000_000
SYMBOLS = (("EURUSD", 1.08512, 0.00001), ("XAUUSD", 2350.55, 0.01), ("US500", 5200.1, 0.1))
VOLUMES = (0.01, 0.1, 0.25, 1.0, 2.5)
SNAPSHOTS = 64  # distinct answers cycled through, each with fresh tuples


def position(i: int, tick: int, ticket: int | None = None, sl: float | None = None) -> Any:
    """Position `i` as the terminal answers it at market tick `tick`."""
    ticket = 100_000 + i if ticket is None else ticket
    symbol, price, point = SYMBOLS[i % len(SYMBOLS)]
    side = i % 2
    current = round(price + ((tick * 7 + i) % 41 - 20) * point, 5)
    volume = VOLUMES[i % len(VOLUMES)]
    return TradePosition(
        ticket=ticket,
        time=T0 // 1000,
        time_msc=T0 + i,
        time_update=(T0 + tick * 10) // 1000,
        time_update_msc=T0 + tick * 10,
        type=side,
        magic=0,
        identifier=ticket,
        reason=3,
        volume=volume,
        price_open=price,
        sl=(round(price - 300 * point, 5) if side == 0 else round(price + 300 * point, 5))
        if sl is None
        else sl,
        tp=0.0,
        price_current=current,
        swap=round(-0.01 * (tick % 5), 2),
        profit=round((current - price) * (1 if side == 0 else -1) * volume * 1000, 2),
        symbol=symbol,
        comment="",
        external_id="",
    )


def pending(j: int, tick: int) -> Any:
    symbol, price, point = SYMBOLS[j % len(SYMBOLS)]
    return TradeOrder(
        ticket=900_000 + j,
        time_setup=T0 // 1000,
        time_setup_msc=T0 + j,
        time_done=0,
        time_done_msc=0,
        time_expiration=0,
        type=2 + j % 4,
        type_time=0,
        type_filling=2,
        state=1,
        magic=0,
        position_id=0,
        position_by_id=0,
        reason=3,
        volume_initial=0.1,
        volume_current=0.1,
        price_open=round(price - 500 * point, 5),
        sl=0.0,
        tp=0.0,
        price_current=round(price + (tick % 9) * point, 5),
        price_stoplimit=0.0,
        symbol=symbol,
        comment="",
        external_id="",
    )


def no_history(ticket: int) -> tuple[Decimal, int] | None:
    raise AssertionError(f"exit_price asked for {ticket} in the steady state")


def timed(
    detector: Detector, answers: list[tuple[Any, Any]], exit_price: Any, n: int
) -> tuple[list[float], list[list[Any]]]:
    """Poll `n` times through `answers`; the microseconds of each poll and its changes."""
    clock = time.perf_counter_ns
    poll = detector.poll
    spans: list[float] = []
    outs: list[list[Any]] = []
    k = len(answers)
    for s in range(n):
        positions, orders = answers[s % k]
        t = clock()
        changes = poll(positions, orders, exit_price)
        spans.append((clock() - t) / 1000)
        outs.append(changes)
    return spans, outs


def line(bench: str, n: int, orders: int, spans: list[float], **extra: object) -> None:
    emit(
        {
            "bench": bench,
            "positions": n,
            "p50_us": round(percentile(spans, 50), 1),
            "p99_us": round(percentile(spans, 99), 1),
            **extra,
            "max_us": round(max(spans), 1),
            "orders": orders,
            "samples": len(spans),
        }
    )


def steady(n: int, orders: int, samples: int, warmup: int) -> None:
    answers = [
        (
            tuple(position(i, tick) for i in range(n)),
            tuple(pending(j, tick) for j in range(orders)),
        )
        for tick in range(SNAPSHOTS)
    ]
    detector = Detector()
    detector.start(*answers[0])
    timed(detector, answers, no_history, warmup)
    spans, outs = timed(detector, answers, no_history, samples)
    if any(outs):
        raise SystemExit(f"the steady state at {n} positions produced changes: {outs[0]}")
    # The share of one core the steady state costs at the default 10 ms interval.
    line("mt5_diff", n, orders, spans, core_pct=round(percentile(spans, 50) / 100, 3))


def with_sl_changes(n: int, orders: int, samples: int, warmup: int) -> None:
    """Position 0's SL moves between two levels every poll: one POSITION_MODIFIED each."""
    answers = []
    for tick in range(SNAPSHOTS):
        sl = 1.08 if tick % 2 else 1.081
        rows = (position(0, tick, sl=sl), *(position(i, tick) for i in range(1, n)))
        answers.append((rows, tuple(pending(j, tick) for j in range(orders))))
    detector = Detector()
    detector.start(*answers[-1])
    spans, outs = timed(detector, answers, no_history, warmup + samples)
    kinds = {tuple(c.kind for c in out) for out in outs}
    if kinds != {(EventKind.POSITION_MODIFIED,)}:
        raise SystemExit(f"sl changes at {n} positions gave {kinds}")
    line("mt5_diff_changes", n, orders, spans[warmup:], change="sl")


def with_close_open(n: int, orders: int, samples: int, warmup: int) -> None:
    """Each poll the oldest position closes and a new one opens (a rolling book).

    The answers are built before each poll, outside the clock.
    """
    deals: dict[int, tuple[Any, ...]] = {}

    def exit_price(ticket: int) -> tuple[Decimal, int] | None:
        return closing_deal(deals.get(ticket))

    def answer(s: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        rows = tuple(position(s + i, s) for i in range(n))
        return rows, tuple(pending(j, s) for j in range(orders))

    detector = Detector()
    detector.start(*answer(0))
    clock = time.perf_counter_ns
    spans: list[float] = []
    for s in range(1, warmup + samples + 1):
        positions, pending_orders = answer(s)
        gone = 100_000 + s - 1
        deals = {
            gone: (
                TradeDeal(gone, gone, T0 // 1000, T0, 0, 0, 0, gone, 3, 1.0, 1.08,
                          0.0, 0.0, 0.0, 0.0, "EURUSD", "", ""),
                TradeDeal(gone + 10**7, 0, T0 // 1000, T0 + s, 1, 1, 0, gone, 3, 1.0, 1.09,
                          0.0, 0.0, 0.0, 0.0, "EURUSD", "", ""),
            )
        }  # fmt: skip
        t = clock()
        changes = detector.poll(positions, pending_orders, exit_price)
        spans.append((clock() - t) / 1000)
        got = [(c.kind, c.master_ref) for c in changes]
        want = [
            (EventKind.POSITION_CLOSED, f"P{gone}"),
            (EventKind.POSITION_OPENED, f"P{gone + n}"),
        ]
        if got != want:
            raise SystemExit(f"close_open at {n} positions gave {got}")
    line("mt5_diff_changes", n, orders, spans[warmup:], change="close_open")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", default="0,10,100,1000")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--orders", type=int, default=5)
    args = parser.parse_args()
    levels = [int(x) for x in args.positions.split(",")]
    log(f"python {sys.version.split()[0]}, load {load_average()}")
    for n in levels:
        steady(n, args.orders, args.samples, args.warmup)
    for n in levels:
        if n:
            with_sl_changes(n, args.orders, args.samples // 4, args.warmup // 4)
            with_close_open(n, args.orders, args.samples // 10, args.warmup // 10)
    log(f"done, load {load_average()}")


if __name__ == "__main__":
    main()
