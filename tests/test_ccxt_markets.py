"""Markets parsed by the real ccxt classes become instruments; bad orders are denied locally."""

from decimal import Decimal as D

import ccxt
import pytest

from brokers.venues.base import OrderDenied
from brokers.venues.ccxt.capabilities import checked_client_order_id
from brokers.venues.ccxt.markets import check_order, instrument
from copier.core import Side, client_order_id

# One symbol of Binance's GET /api/v3/exchangeInfo, as documented.
BTCUSDT = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "baseAssetPrecision": 8,
    "quoteAsset": "USDT",
    "quotePrecision": 8,
    "quoteAssetPrecision": 8,
    "orderTypes": ["LIMIT", "MARKET"],
    "isSpotTradingAllowed": True,
    "isMarginTradingAllowed": False,
    "permissions": [],
    "permissionSets": [["SPOT"]],
    "filters": [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.01000000",
            "maxPrice": "1000000.00000000",
            "tickSize": "0.01000000",
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": "0.00001000",
            "maxQty": "9000.00000000",
            "stepSize": "0.00001000",
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": "5.00000000",
            "applyMinToMarket": True,
            "maxNotional": "9000000.00000000",
        },
    ],
}


@pytest.fixture(scope="module")
def binance():
    return ccxt.binance(
        {
            "options": {
                "defaultType": "spot",
                "crossMarginPairsData": [],
                "isolatedMarginPairsData": [],
            }
        }
    )


@pytest.fixture(scope="module")
def market(binance):
    return binance.parse_market(BTCUSDT)


def test_a_binance_market_becomes_an_instrument(binance, market):
    inst = instrument(market, binance.precisionMode)
    assert inst.symbol == "BTC/USDT"
    assert (inst.volume_step, inst.volume_min, inst.volume_max) == (
        D("0.00001"),
        D("0.00001"),
        D("9000"),
    )
    assert (inst.tick_size, inst.price_digits, inst.contract_size) == (D("0.01"), 2, D("1"))


def test_decimal_places_precision_is_read_as_digits(market):
    digits = {**market, "precision": {"amount": 3, "price": 1}}
    inst = instrument(digits, ccxt.DECIMAL_PLACES)
    assert (inst.volume_step, inst.tick_size, inst.price_digits) == (D("0.001"), D("0.1"), 1)


FREE = {"USDT": D("1000"), "BTC": D("0.5")}


@pytest.mark.parametrize(
    ("side", "amount", "price", "limit", "message"),
    [
        (
            Side.BUY,
            "0.000005",
            "65000",
            False,
            "0.000005 BTC is under BTC/USDT's minimum of 0.00001",
        ),
        (
            Side.BUY,
            "0.000015",
            "65000",
            False,
            "0.000015 BTC is not a multiple of BTC/USDT's volume step 0.00001",
        ),
        (Side.BUY, "9001", "65000", False, "9001 BTC is over BTC/USDT's maximum of 9000"),
        (
            Side.BUY,
            "0.00005",
            "65000",
            False,
            "3.25 USDT is under BTC/USDT's minimum order value of 5 USDT",
        ),
        (
            Side.BUY,
            "0.001",
            "65000.005",
            True,
            "price 65000.005 is not a multiple of BTC/USDT's tick 0.01",
        ),
        (Side.BUY, "0.1", "65000", False, "the order needs 6500 USDT and 1000 USDT is free"),
        (Side.SELL, "0.6", "65000", False, "the order needs 0.6 BTC and 0.5 BTC is free"),
    ],
)
def test_orders_the_exchange_would_reject_are_denied_locally(
    binance, market, side, amount, price, limit, message
):
    with pytest.raises(OrderDenied) as denied:
        check_order(
            market, binance.precisionMode, side, D(amount), D(price), FREE, limit_price=limit
        )
    assert denied.value.message == message


def test_a_good_order_passes(binance, market):
    check_order(market, binance.precisionMode, Side.BUY, D("0.01"), D("65000"), FREE)
    check_order(market, binance.precisionMode, Side.SELL, D("0.5"), D("65000"), FREE)


def test_derivatives_leave_the_margin_check_to_the_exchange(market):
    swap = {
        **market,
        "spot": False,
        "type": "swap",
        "contract": True,
        "linear": True,
        "contractSize": 0.001,
        "limits": {**market["limits"], "cost": {"min": None}},
    }
    check_order(swap, ccxt.TICK_SIZE, Side.BUY, D("100"), D("65000"), {})
    assert instrument(swap, ccxt.TICK_SIZE).tick_value == D("0.00001")


@pytest.mark.parametrize("exchange", ["binance", "binanceusdm", "bybit", "okx", "kraken"])
def test_our_client_order_ids_fit_every_exchange(exchange):
    coid = client_order_id(123456, "P98765", 42)
    assert checked_client_order_id(exchange, coid) == coid


def test_an_id_an_exchange_cannot_take_is_denied():
    with pytest.raises(OrderDenied, match="does not fit okx's rules"):
        checked_client_order_id("okx", "TS-with-dashes")


def test_derivatives_margin_is_checked_at_the_leverage_the_copier_set(market):
    swap = {
        **market,
        "spot": False,
        "type": "swap",
        "contract": True,
        "linear": True,
        "settle": "USDT",
        "contractSize": 0.001,
        "limits": {**market["limits"], "cost": {"min": None}},
    }
    free = {"USDT": D("500")}
    # 100 contracts of 0.001 BTC at 65000 = 6500 USDT; at 20x that is 325 USDT of margin.
    check_order(swap, ccxt.TICK_SIZE, Side.BUY, D("100"), D("65000"), free, leverage=20)
    with pytest.raises(OrderDenied) as denied:
        check_order(swap, ccxt.TICK_SIZE, Side.BUY, D("100"), D("65000"), free, leverage=10)
    assert denied.value.message == (
        "the order needs 650 USDT of margin at 10x and 500 USDT is free"
    )
    # Closing needs no margin.
    check_order(
        swap, ccxt.TICK_SIZE, Side.SELL, D("100"), D("65000"), {}, leverage=10, reduce_only=True
    )
