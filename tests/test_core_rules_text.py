"""Copy rules written as text: symbol lists, symbol maps and trading hours."""

import datetime as dt

import pytest

from copier.core import TimeWindow
from copier.core.rules_text import parse_symbol_map, parse_symbols, parse_time_windows

ALL_DAYS = frozenset(range(1, 8))


def refusal(parse, text: str) -> str:
    with pytest.raises(ValueError) as refused:
        parse(text)
    return str(refused.value)


# -- symbol lists --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "EURUSD, XAUUSD",
        "EURUSD,XAUUSD",
        "EURUSD; XAUUSD",
        "EURUSD XAUUSD",
        "EURUSD\nXAUUSD\n",
        "  EURUSD ,\n\n XAUUSD  ",
        "EURUSD, XAUUSD, EURUSD",
    ],
)
def test_symbols_are_separated_by_commas_semicolons_spaces_or_lines(text):
    assert parse_symbols(text) == frozenset({"EURUSD", "XAUUSD"})


@pytest.mark.parametrize("text", ["", "   ", "\n\n", " , ;"])
def test_no_symbols_is_an_empty_list(text):
    assert parse_symbols(text) == frozenset()


def test_symbols_keep_venue_punctuation_and_case():
    text = "EURUSD.m BTC/USDT BINANCE:BTCUSDT US30# XAU-USD a_b eurusd"
    assert parse_symbols(text) == frozenset(
        {"EURUSD.m", "BTC/USDT", "BINANCE:BTCUSDT", "US30#", "XAU-USD", "a_b", "eurusd"}
    )


def test_a_symbol_may_be_32_characters_long():
    assert parse_symbols("A" * 32) == frozenset({"A" * 32})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("EURUSD, EUR*USD", "“EUR*USD” is not a symbol"),
        ("XAU$", "“XAU$” is not a symbol"),
        ("A" * 33, f"“{'A' * 33}” is not a symbol"),
    ],
)
def test_a_bad_symbol_is_named(text, reason):
    assert refusal(parse_symbols, text) == reason


# -- symbol maps ---------------------------------------------------------------------


def test_a_symbol_map_pairs_master_and_follower_symbols():
    text = "EURUSD.m=EURUSDpro\n  XAUUSD.m = GOLD  \n"
    assert parse_symbol_map(text) == {"EURUSD.m": "EURUSDpro", "XAUUSD.m": "GOLD"}


def test_a_symbol_map_skips_blank_lines():
    assert parse_symbol_map("\n\nA=B\n   \nC=D\n") == {"A": "B", "C": "D"}


@pytest.mark.parametrize("text", ["", "\n", "   \n  "])
def test_an_empty_symbol_map_maps_nothing(text):
    assert parse_symbol_map(text) == {}


def test_two_masters_may_map_to_one_follower_symbol():
    assert parse_symbol_map("XAUUSD.m=GOLD\nXAUUSD.x=GOLD") == {
        "XAUUSD.m": "GOLD",
        "XAUUSD.x": "GOLD",
    }


@pytest.mark.parametrize("line", ["EURUSD", "=EURUSDpro", "EURUSD.m=", " = ", "EURUSD.m EURUSDpro"])
def test_a_symbol_map_line_needs_both_sides(line):
    assert refusal(parse_symbol_map, line) == (
        "line 1: write MASTER=FOLLOWER, e.g. EURUSD.m=EURUSDpro"
    )


def test_a_symbol_map_error_names_its_line_counting_blank_lines():
    assert refusal(parse_symbol_map, "A=B\n\nbroken") == (
        "line 3: write MASTER=FOLLOWER, e.g. EURUSD.m=EURUSDpro"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("EUR USD=EURUSD", "line 1: “EUR USD” is not a symbol"),
        ("EURUSD=EUR*USD", "line 1: “EUR*USD” is not a symbol"),
        ("A=B=C", "line 1: “B=C” is not a symbol"),
        ("A=B\nX$=Y", "line 2: “X$” is not a symbol"),
    ],
)
def test_a_symbol_map_names_a_bad_symbol(text, reason):
    assert refusal(parse_symbol_map, text) == reason


def test_a_symbol_map_refuses_a_master_symbol_mapped_twice():
    assert refusal(parse_symbol_map, "EURUSD=A\nGBPUSD=B\nEURUSD=C") == (
        "line 3: EURUSD is mapped twice"
    )


# -- trading hours -------------------------------------------------------------------


def test_a_window_with_a_day_range():
    assert parse_time_windows("Mon-Fri 08:00-17:00") == (
        TimeWindow(dt.time(8), dt.time(17), frozenset({1, 2, 3, 4, 5})),
    )


def test_a_window_on_one_day():
    assert parse_time_windows("Sun 22:00-23:59") == (
        TimeWindow(dt.time(22), dt.time(23, 59), frozenset({7})),
    )


def test_a_window_without_days_is_every_day():
    assert parse_time_windows("09:30-16:00") == (TimeWindow(dt.time(9, 30), dt.time(16), ALL_DAYS),)


def test_a_window_may_cross_midnight():
    assert parse_time_windows("22:00-06:00") == (TimeWindow(dt.time(22), dt.time(6), ALL_DAYS),)


def test_a_day_range_may_wrap_over_the_weekend():
    (window,) = parse_time_windows("Fri-Mon 22:00-06:00")
    assert window.days == frozenset({5, 6, 7, 1})


def test_days_and_hours_may_be_written_loosely():
    assert parse_time_windows("  MON-fri   8:00-9:05 ") == (
        TimeWindow(dt.time(8), dt.time(9, 5), frozenset({1, 2, 3, 4, 5})),
    )


def test_24_00_ends_a_window_at_midnight():
    (window,) = parse_time_windows("00:00-24:00")
    assert (window.start, window.end) == (dt.time(0), dt.time.max)
    assert window.contains(dt.datetime(2024, 7, 1, 23, 59, 59, tzinfo=dt.UTC))


def test_several_windows_one_a_line():
    text = "Mon-Fri 08:00-12:00\n\nMon-Fri 14:00-17:30\nSat 10:00-12:00\n"
    assert parse_time_windows(text) == (
        TimeWindow(dt.time(8), dt.time(12), frozenset({1, 2, 3, 4, 5})),
        TimeWindow(dt.time(14), dt.time(17, 30), frozenset({1, 2, 3, 4, 5})),
        TimeWindow(dt.time(10), dt.time(12), frozenset({6})),
    )


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_no_windows_is_an_empty_tuple(text):
    assert parse_time_windows(text) == ()


FORMAT = "line 1: write e.g. “Mon-Fri 08:00-17:00” or “22:00-06:00”"
DAYS = "line 1: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Monday 08:00-17:00", FORMAT),
        ("Mon-Fri", FORMAT),
        ("08:00 - 17:00", FORMAT),
        ("8-17", FORMAT),
        ("Mon-Fri08:00-17:00", FORMAT),
        ("08:00-17:00 Mon-Fri", FORMAT),
        ("Mon-Fri 080:00-17:00", FORMAT),
        ("Xyz 08:00-17:00", DAYS),
        ("Mon-Xyz 08:00-17:00", DAYS),
        ("25:00-26:00", "line 1: 25:00 is not a time of day"),
        ("08:00-08:60", "line 1: 08:60 is not a time of day"),
        ("24:30-06:00", "line 1: 24:30 is not a time of day"),
        ("08:00-08:00", "line 1: the window starts and ends at the same time"),
        ("Mon 8:00-08:00", "line 1: the window starts and ends at the same time"),
    ],
)
def test_a_bad_window_says_what_is_wrong(text, reason):
    assert refusal(parse_time_windows, text) == reason


def test_a_window_error_names_its_line_counting_blank_lines():
    assert refusal(parse_time_windows, "Mon-Fri 08:00-17:00\n\nlunch") == (
        "line 3: write e.g. “Mon-Fri 08:00-17:00” or “22:00-06:00”"
    )
