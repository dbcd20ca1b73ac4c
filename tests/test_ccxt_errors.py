"""Every ccxt exception maps to the right project error, temporary or permanent."""

import ccxt
import pytest

from brokers.venues import base
from brokers.venues.ccxt.errors import TRANSLATIONS, translate

# ccxt class → (project class, permanent, outcome unknown)
EXPECTED = [
    (ccxt.DuplicateOrderId, base.DuplicateOrder, True, False),
    (ccxt.OrderNotFound, base.OrderNotFound, True, False),
    (ccxt.InsufficientFunds, base.InsufficientBalance, True, False),
    (ccxt.PermissionDenied, base.PermissionRefused, True, False),
    (ccxt.AccountNotEnabled, base.PermissionRefused, True, False),
    (ccxt.AccountSuspended, base.PermissionRefused, True, False),
    (ccxt.AuthenticationError, base.CredentialsRejected, True, False),
    (ccxt.InvalidOrder, base.OrderRejected, True, False),
    (ccxt.OrderImmediatelyFillable, base.OrderRejected, True, False),
    (ccxt.OrderNotFillable, base.OrderRejected, True, False),
    (ccxt.ContractUnavailable, base.OrderRejected, True, False),
    (ccxt.BadSymbol, base.OrderRejected, True, False),
    (ccxt.MarketClosed, base.OrderRejected, True, False),
    (ccxt.CancelPending, base.TemporaryVenueError, False, False),
    (ccxt.RateLimitExceeded, base.RateLimited, False, False),
    (ccxt.DDoSProtection, base.RateLimited, False, False),
    (ccxt.InvalidNonce, base.TemporaryVenueError, False, False),
    (ccxt.ChecksumError, base.TemporaryVenueError, False, False),
    (ccxt.RequestTimeout, base.VenueUnavailable, False, True),
    (ccxt.ExchangeNotAvailable, base.VenueUnavailable, False, True),
    (ccxt.OnMaintenance, base.VenueUnavailable, False, True),
    (ccxt.NetworkError, base.VenueUnavailable, False, True),
    (ccxt.BadResponse, base.VenueUnavailable, False, True),
    (ccxt.NullResponse, base.VenueUnavailable, False, True),
    (ccxt.OperationFailed, base.VenueUnavailable, False, True),
    (ccxt.NotSupported, base.VenueError, True, False),
    (ccxt.ArgumentsRequired, base.VenueError, True, False),
    (ccxt.BadRequest, base.VenueError, True, False),
    (ccxt.OperationRejected, base.VenueError, True, False),
    (ccxt.ExchangeError, base.VenueError, True, False),
    (ccxt.BaseError, base.VenueError, True, False),
]


@pytest.mark.parametrize(
    ("ccxt_error", "project_error", "permanent", "unknown"),
    EXPECTED,
    ids=[row[0].__name__ for row in EXPECTED],
)
def test_each_ccxt_error_maps_to_its_project_error(ccxt_error, project_error, permanent, unknown):
    error = translate(ccxt_error('binance {"code":-1,"msg":"the exchange said so"}'))
    assert type(error) is project_error
    assert error.permanent is permanent
    assert error.outcome_unknown is unknown
    assert error.message == 'binance {"code":-1,"msg":"the exchange said so"}'


def test_every_ccxt_error_class_is_covered():
    classes = {
        obj
        for obj in vars(ccxt).values()
        if isinstance(obj, type) and issubclass(obj, ccxt.BaseError)
    }
    assert classes, "ccxt exports its error classes"
    for cls in classes:
        assert isinstance(translate(cls("x")), base.VenueError), cls.__name__


def test_the_table_lists_subclasses_before_their_parents():
    for i, (earlier, _) in enumerate(TRANSLATIONS):
        for later, _ in TRANSLATIONS[i + 1 :]:
            assert not issubclass(later, earlier), (
                f"{later.__name__} is shadowed by {earlier.__name__}"
            )


def test_a_foreign_exception_is_a_permanent_venue_error():
    error = translate(ValueError("odd"))
    assert type(error) is base.VenueError and error.permanent and error.message == "odd"


@pytest.mark.parametrize(
    "body, project_error",
    [
        ('{"code":-2019,"msg":"Margin is insufficient."}', base.InsufficientBalance),
        ('{"code":-2022,"msg":"ReduceOnly Order is rejected."}', base.OrderRejected),
        ('{"code":-4116,"msg":"ClientOrderId is duplicated."}', base.DuplicateOrder),
        ('{"code":-9999,"msg":"Something else."}', base.VenueError),
    ],
)
def test_binance_futures_codes_behind_a_proxy(body, project_error):
    """ccxt maps these only for answers from Binance's own hosts (see the usdm peer tests)."""
    error = translate(ccxt.ExchangeError(f"binanceusdm {body}"))
    assert type(error) is project_error
    assert body in error.message
