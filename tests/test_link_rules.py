"""The copy link page: every rule editable and checked, the risk state, the preview."""

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.models import PaperPosition, Role
from copier.core import (
    DeviationUnit,
    FollowerOrder,
    LimitUnit,
    RiskAction,
    RiskLimit,
    RiskMode,
    Side,
    Sizing,
    Skip,
    TimeWindow,
)
from copier.forms import CopyRulesForm
from copier.models import Alert, CopyLink, Execution
from copier.preview import preview
from tests.factories import make_link, make_paper, make_user
from tradosphere.bus import LINKS_VERSION_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(client):
    user = make_user()
    client.force_login(user)
    return user


@pytest.fixture
def master(user):
    return make_paper(user, "Master", role=Role.MASTER, balance="10000.00")


@pytest.fixture
def follower(user):
    return make_paper(user, "Follower", balance="5000.00")


@pytest.fixture
def link(master, follower):
    return make_link(master, follower)


def rules_data(link, **changes):
    """The rules form as the page renders it for `link`, with `changes` typed in."""
    form = CopyRulesForm(instance=link)
    values = {name: form[name].value() for name in form.fields}
    values.update(changes)
    data = {}
    for name, value in values.items():
        if value is True:
            data[name] = "on"
        elif value is False:
            continue  # an unticked checkbox is not sent
        else:
            data[name] = "" if value is None else str(value)
    return data


def saved(link):
    return CopyLink.objects.values().get(pk=link.pk)


def test_the_link_page_shows_every_rule(client, link):
    response = client.get(f"/links/{link.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    for legend in ("Sizing", "Symbols", "Filters", "Stops", "Modes", "Risk stops"):
        assert f"<legend>{legend}</legend>" in html
    for name in CopyRulesForm.Meta.fields:
        assert f'name="{name}"' in html
    assert "Copying on" in html
    # Decimals read as a person writes them.
    assert 'name="sizing_value" value="1"' in html
    assert 'name="sl_offset_points" value="0"' in html
    assert "Follower lots = master lots × this value" in html


def test_valid_rules_round_trip_into_core_rules(
    client, link, redis_client, django_capture_on_commit_callbacks
):
    data = rules_data(
        link,
        sizing="fixed",
        sizing_value="0.25",
        force_min=True,
        symbol_map="EURUSD.m=EURUSDpro\n\nXAUUSD = GOLD",
        master_suffix=".m",
        follower_prefix="x",
        symbols_allowed="EURUSD, XAUUSD\nGBPUSD",
        symbols_denied="BTCUSD",
        copy_sells=False,
        min_master_volume="0.1",
        max_master_volume="5",
        max_open_positions="3",
        time_windows="Mon-Fri 08:00-17:00\nSun 22:00-23:59",
        time_zone="Europe/London",
        max_signal_age_ms="1500",
        max_price_deviation="2.5",
        price_deviation_unit="percent",
        reverse=True,
        copy_tp=False,
        fixed_sl_points="200",
        sl_offset_points="5",
        close_only=True,
        copy_pending=False,
        is_active=False,
        daily_loss_limit="5",
        daily_loss_unit="percent",
        max_drawdown="1000",
        risk_action="close_all_and_pause",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/links/{link.pk}/", data)
    assert response.status_code == 302
    assert response["Location"] == f"/links/{link.pk}/"
    assert redis_client.get(LINKS_VERSION_KEY) == "1"

    link.refresh_from_db()
    rules = link.rules()
    assert rules.sizing is Sizing.FIXED
    assert rules.sizing_value == Decimal("0.25")
    assert rules.force_min
    assert rules.symbol_map == {"EURUSD.m": "EURUSDpro", "XAUUSD": "GOLD"}
    assert rules.map_symbol("GBPUSD.m") == "xGBPUSD"
    assert rules.map_symbol("XAUUSD") == "GOLD"
    assert rules.symbols_allowed == {"EURUSD", "XAUUSD", "GBPUSD"}
    assert rules.symbols_denied == {"BTCUSD"}
    assert rules.sides == {Side.BUY}
    assert (rules.min_master_volume, rules.max_master_volume) == (Decimal("0.1"), Decimal("5"))
    assert rules.max_open_positions == 3
    assert rules.time_windows == (
        TimeWindow(dt.time(8), dt.time(17), frozenset({1, 2, 3, 4, 5})),
        TimeWindow(dt.time(22), dt.time(23, 59), frozenset({7})),
    )
    assert rules.time_zone == zoneinfo.ZoneInfo("Europe/London")
    assert rules.max_signal_age_ms == 1500
    assert rules.max_price_deviation == Decimal("2.5")
    assert rules.price_deviation_unit is DeviationUnit.PERCENT
    assert rules.reverse and rules.copy_sl and not rules.copy_tp
    assert rules.fixed_sl_points == Decimal("200")
    assert rules.fixed_tp_points is None
    assert rules.sl_offset_points == Decimal("5")
    assert rules.close_only and not rules.copy_pending
    assert not link.is_active
    assert rules.daily_loss_limit == RiskLimit(Decimal("5"), LimitUnit.PERCENT)
    assert rules.max_drawdown == RiskLimit(Decimal("1000"), LimitUnit.AMOUNT)
    assert rules.risk_action is RiskAction.CLOSE_ALL_AND_PAUSE

    page = client.get(f"/links/{link.pk}/").content.decode()
    assert "Saved the copy rules" in page
    assert "Limits: daily loss 5%, drawdown 1000 USD → Close all copies and pause." in page
    assert "copying off" in page


def test_no_limit_needs_no_risk_action(client, link):
    response = client.post(f"/links/{link.pk}/", rules_data(link, risk_action=""))
    assert response.status_code == 302
    link.refresh_from_db()
    assert link.risk_action == RiskAction.STOP_OPENING


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sizing_value": "0"}, "Sizing value: The sizing value must be greater than 0."),
        ({"sizing_value": "-2"}, "Sizing value: The sizing value must be greater than 0."),
        ({"sizing_value": "lots"}, "Sizing value: Enter a number."),
        (
            {"sizing": "risk_percent", "sizing_value": "150"},
            "Sizing value: 150% is over 100%; a percentage is at most 100.",
        ),
        ({"sizing": "martingale"}, "Sizing mode: Select a valid choice."),
        (
            {"min_master_volume": "0"},
            "Minimum master volume: The minimum master volume must be greater than 0.",
        ),
        (
            {"min_master_volume": "2", "max_master_volume": "1"},
            "Maximum master volume: The maximum master volume must be at least the minimum "
            "of 2 lots.",
        ),
        (
            {"max_open_positions": "0"},
            "Maximum open positions: The maximum of open positions must be greater than 0.",
        ),
        (
            {"max_signal_age_ms": "-5"},
            "Maximum signal age (ms): The maximum signal age must be greater than 0.",
        ),
        (
            {"max_price_deviation": "101", "price_deviation_unit": "percent"},
            "Maximum price deviation: 101% is over 100%",
        ),
        (
            {"fixed_sl_points": "0"},
            "Fixed stop loss (points): The fixed stop loss must be greater than 0.",
        ),
        (
            {"fixed_tp_points": "-10"},
            "Fixed take profit (points): The fixed take profit must be greater than 0.",
        ),
        (
            {"sl_offset_points": "-1"},
            "Stop loss offset (points): The stop loss offset cannot be negative.",
        ),
        (
            {"daily_loss_limit": "120", "daily_loss_unit": "percent"},
            "Daily loss limit: 120% is over 100%",
        ),
        ({"max_drawdown": "0"}, "Maximum drawdown: The maximum drawdown must be greater than 0."),
        (
            {"daily_loss_limit": "100", "risk_action": ""},
            "When a limit is hit: Choose what happens when a limit is hit.",
        ),
        (
            {"time_zone": "Mars/Olympus_Mons"},
            "Time zone: “Mars/Olympus_Mons” is not a time zone; write an IANA name",
        ),
        ({"symbol_map": "EURUSD"}, "Symbol map: line 1: write MASTER=FOLLOWER"),
        ({"symbol_map": "A=B\nA=C"}, "Symbol map: line 2: A is mapped twice"),
        ({"symbols_allowed": "EUR$USD"}, "Allowed symbols: “EUR$USD” is not a symbol"),
        (
            {"symbols_allowed": "EURUSD, GBPUSD", "symbols_denied": "EURUSD"},
            "Denied symbols: EURUSD: both allowed and denied.",
        ),
        (
            {"time_windows": "Mon-Fri 8-17"},
            "Trading hours: line 1: write e.g. “Mon-Fri 08:00-17:00” or “22:00-06:00”",
        ),
        (
            {"time_windows": "09:00-10:00\nMon-Fry 08:00-17:00"},
            "Trading hours: line 2: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun",
        ),
        ({"time_windows": "25:00-26:00"}, "Trading hours: line 1: 25:00 is not a time of day"),
        (
            {"copy_buys": False, "copy_sells": False},
            "Copy buys: Copy buys, sells or both; with neither nothing is copied.",
        ),
        (
            {"follower_suffix": "m m"},
            "Follower suffix: “m m” can only hold letters, digits and the signs",
        ),
    ],
)
def test_bad_rules_name_the_field_and_save_nothing(
    client, link, redis_client, django_capture_on_commit_callbacks, changes, message
):
    before = saved(link)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/links/{link.pk}/", rules_data(link, **changes))
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert "The rules were not saved" in html
    assert saved(link) == before
    assert redis_client.get(LINKS_VERSION_KEY) is None


def test_a_broken_link_shows_the_models_check_at_the_top(client, link, follower):
    # The follower became a master behind the page's back.
    type(follower).objects.filter(pk=follower.pk).update(role=Role.MASTER)
    before = saved(link)
    response = client.post(f"/links/{link.pk}/", rules_data(link, sizing_value="2"))
    assert response.status_code == 400
    assert "Follower is a master account; make it a follower to copy." in response.content.decode()
    assert saved(link) == before


def test_someone_elses_link_is_not_found(client, user):
    other = make_user("other@example.com")
    theirs = make_link(
        make_paper(other, "Their master", role=Role.MASTER),
        make_paper(other, "Their follower"),
        risk_mode=RiskMode.PAUSED,
        risk_reason="drawdown",
    )
    before = saved(theirs)
    assert client.get(f"/links/{theirs.pk}/").status_code == 404
    assert client.get(f"/links/{theirs.pk}/?symbol=EURUSD&side=buy&price=1").status_code == 404
    response = client.post(f"/links/{theirs.pk}/", rules_data(theirs, sizing_value="9"))
    assert response.status_code == 404
    assert client.post(f"/links/{theirs.pk}/resume/", {"confirm": "on"}).status_code == 404
    assert saved(theirs) == before
    assert not Alert.objects.exists()


# --- Risk state -------------------------------------------------------------------


@pytest.fixture
def tripped(link):
    Alert.objects.create(
        owner=link.owner,
        link=link,
        kind="risk_stop",
        message="Risk stop (stop opening): today's loss of 600 USD reached the daily limit",
    )
    CopyLink.objects.filter(pk=link.pk).update(
        risk_mode=RiskMode.STOP_OPENING,
        risk_reason="today's loss of 600 USD reached the daily limit of 500 USD",
        risk_tripped_at=timezone.now(),
    )
    link.refresh_from_db()
    return link


def test_the_page_shows_the_risk_state_and_the_links_alerts(client, tripped, master, user):
    other_link = make_link(master, make_paper(user, "Other follower"))
    Alert.objects.create(owner=user, link=other_link, kind="order_failed", message="not mine")
    html = client.get(f"/links/{tripped.pk}/").content.decode()
    assert "New positions stopped" in html
    assert "reached the daily limit of 500 USD" in html
    assert "Resume copying" in html
    assert "No risk limits are set" in html
    assert "Risk stop (stop opening): today&#x27;s loss of 600 USD" in html
    assert "not mine" not in html


def test_resume_needs_the_confirmation(client, tripped):
    response = client.post(f"/links/{tripped.pk}/resume/", {})
    assert response.status_code == 400
    assert (
        "I checked the follower account: Tick the box to confirm that copying may resume."
        in response.content.decode()
    )
    tripped.refresh_from_db()
    assert tripped.risk_mode == RiskMode.STOP_OPENING


def test_resume_copying_resets_the_risk_mode(
    client, tripped, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/links/{tripped.pk}/resume/", {"confirm": "on"})
    assert response.status_code == 302
    tripped.refresh_from_db()
    assert tripped.risk_mode == RiskMode.NORMAL
    assert tripped.risk_reason == ""
    assert tripped.risk_tripped_at is None
    assert redis_client.get(LINKS_VERSION_KEY) == "1"
    resumed = Alert.objects.get(kind="risk_resumed")
    assert resumed.link == tripped and resumed.level == Alert.Level.INFO
    html = client.get(f"/links/{tripped.pk}/").content.decode()
    assert "Follower copies Master again." in html
    assert "no risk stop has tripped" in html
    assert "Resume copying" not in html


def test_resume_is_a_post(client, tripped):
    assert client.get(f"/links/{tripped.pk}/resume/").status_code == 405


# --- Preview ----------------------------------------------------------------------


def rules(link, **fields):
    CopyLink.objects.filter(pk=link.pk).update(**fields)
    link.refresh_from_db()
    return link


def test_preview_multiplier(link):
    result = preview(rules(link, sizing_value=Decimal("0.5")), "EURUSD", Side.BUY, D("1.085"), None)
    assert result == FollowerOrder(
        action=result.action,
        symbol="EURUSD",
        side=Side.BUY,
        volume=D("0.50"),
        reference_price=D("1.085"),
        link_ref="preview",
    )


def D(text):
    return Decimal(text)


def test_preview_fixed_lots_and_stops(link):
    link = rules(link, sizing=Sizing.FIXED, sizing_value=D("0.3"), sl_offset_points=D("10"))
    result = preview(link, "EURUSD", Side.SELL, D("1.08500"), D("1.09000"))
    assert isinstance(result, FollowerOrder)
    assert (result.side, result.volume, result.symbol) == (Side.SELL, D("0.30"), "EURUSD")
    assert result.sl == D("1.09010")


def test_preview_balance_ratio_uses_both_balances(link):
    link = rules(link, sizing=Sizing.BALANCE_RATIO, sizing_value=D("1"))
    result = preview(link, "XAUUSD", Side.BUY, D("2350"), None)
    assert isinstance(result, FollowerOrder)
    assert result.volume == D("0.50")  # 1 lot x 5000 / 10000


def test_preview_risk_percent_needs_a_stop_loss(link):
    link = rules(link, sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    assert preview(link, "EURUSD", Side.BUY, D("1.085"), None) == Skip(
        "risk sizing needs a stop loss"
    )


def test_preview_risk_percent_with_a_stop_loss(link):
    link = rules(link, sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    result = preview(link, "EURUSD", Side.BUY, D("1.085"), D("1.080"))
    # 1% of 5000 = 50 USD over 0.005 x 100000 USD per price unit = 0.1 lots.
    assert isinstance(result, FollowerOrder)
    assert (result.volume, result.sl) == (D("0.10"), D("1.08000"))


def test_preview_maps_the_symbol_by_suffix(link):
    link = rules(link, master_suffix=".pro")
    result = preview(link, "EURUSD.pro", Side.BUY, D("1.085"), None)
    assert isinstance(result, FollowerOrder)
    assert result.symbol == "EURUSD"
    link = rules(link, master_suffix="", follower_suffix="m")
    assert preview(link, "EURUSD", Side.BUY, D("1.085"), None) == Skip(
        "EURUSDm is not tradable on the follower account"
    )


def test_preview_skips_a_denied_symbol(link):
    link = rules(link, symbols_denied="XAUUSD, BTCUSD")
    assert preview(link, "XAUUSD", Side.BUY, D("2350"), None) == Skip(
        "XAUUSD is in this link's denied symbols"
    )


def test_preview_skips_below_the_minimum(link):
    link = rules(link, sizing_value=D("0.001"))
    assert preview(link, "EURUSD", Side.BUY, D("1.085"), None) == Skip(
        "0.001 lots is under EURUSD's minimum of 0.01"
    )
    link = rules(link, force_min=True)
    result = preview(link, "EURUSD", Side.BUY, D("1.085"), None)
    assert isinstance(result, FollowerOrder)
    assert result.volume == D("0.01")
    assert result.note == "raised from 0.001 to EURUSD's minimum of 0.01 lots"


def test_preview_counts_the_followers_open_positions(link, follower):
    link = rules(link, max_open_positions=1)
    PaperPosition.objects.create(
        account=follower, symbol="EURUSD", side="buy", volume=D("1"), open_price=D("1.08")
    )
    assert preview(link, "EURUSD", Side.BUY, D("1.085"), None) == Skip(
        "the follower already has 1 open positions (limit 1)"
    )


def test_preview_on_the_page(client, link):
    rules(link, sizing_value=D("2"), copy_tp=False)
    response = client.get(
        f"/links/{link.pk}/", {"symbol": "XAUUSD", "side": "sell", "price": "2350.5", "sl": "2360"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert '<strong data-testid="preview-volume">2</strong>' in html
    assert '<span data-testid="preview-symbol">XAUUSD</span>' in html
    assert '<td data-testid="preview-sl">2360</td>' in html
    assert "open sell" in html


def test_preview_shows_the_skip_reason_on_the_page(client, link):
    rules(link, sizing=Sizing.RISK_PERCENT, sizing_value=D("1"))
    response = client.get(f"/links/{link.pk}/", {"symbol": "EURUSD", "side": "buy", "price": "1"})
    assert "Not copied: risk sizing needs a stop loss" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"price": "0"}, "Master price: The price must be greater than 0."),
        ({"price": "abc"}, "Master price: Enter a number."),
        ({"sl": "-1"}, "Master stop loss: The stop loss must be greater than 0."),
        ({"symbol": "DOGE"}, "Master symbol: Select a valid choice."),
        ({"side": "long"}, "Side: Select a valid choice."),
    ],
)
def test_a_bad_preview_names_the_field(client, link, query, message):
    params = {"symbol": "EURUSD", "side": "buy", "price": "1.085", **query}
    response = client.get(f"/links/{link.pk}/", params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_no_preview_while_the_rules_form_has_errors(client, link):
    response = client.post(
        f"/links/{link.pk}/?symbol=EURUSD&side=buy&price=1.085",
        rules_data(link, sizing_value="0"),
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "preview-order" not in html and "preview-skip" not in html
    assert "Fix the rules below to preview them" in html


def test_saving_keeps_the_preview_and_applies_the_new_rules(client, link):
    query = "symbol=EURUSD&side=buy&price=1.085"
    response = client.post(f"/links/{link.pk}/?{query}", rules_data(link, sizing_value="3"))
    assert response.status_code == 302
    assert response["Location"] == f"/links/{link.pk}/?{query}"
    html = client.get(response["Location"]).content.decode()
    assert '<strong data-testid="preview-volume">3</strong>' in html


def test_preview_of_a_tripped_or_switched_off_link(link):
    link = rules(link, risk_mode=RiskMode.STOP_OPENING, risk_reason="drawdown")
    assert preview(link, "EURUSD", Side.BUY, D("1.085"), None) == Skip(
        "new positions are stopped by a risk stop: drawdown"
    )
    link = rules(link, is_active=False)
    result = preview(link, "EURUSD", Side.BUY, D("1.085"), None)
    assert isinstance(result, Skip) and result.reason.startswith("copying is off")


# --- Link list and dashboard ------------------------------------------------------


def test_the_link_list_links_to_the_link_page(client, tripped):
    html = client.get("/links/").content.decode()
    assert f'href="/links/{tripped.pk}/"' in html
    assert "×1" in html
    assert "New positions stopped" in html


def test_the_dashboard_shows_the_latest_alerts(client, link, user):
    for n in range(12):
        Alert.objects.create(owner=user, link=link, kind="order_failed", message=f"alert {n:02}")
    Alert.objects.create(
        owner=make_user("other@example.com"), kind="risk_stop", message="someone else's"
    )
    Execution.objects.create(
        owner=user,
        link=link,
        client_order_id="TS-test-1",
        action="open",
        master_ref="P1",
        seq=1,
        kind="position_opened",
        status=Execution.Status.SKIPPED,
        reason="EURUSD is in this link's denied symbols",
        symbol="EURUSD",
        t_detected_ns=0,
        t_planned_ns=1000,
    )
    html = client.get("/dashboard/live/").content.decode()
    shown = [n for n in range(12) if f"alert {n:02}" in html]
    assert shown == list(range(2, 12))
    assert "someone else" not in html
    assert html.index('data-testid="alerts"') < html.index('data-testid="executions"')
    assert f'href="/links/{link.pk}/"' in html
    assert "<td>open</td>" in html
    assert "EURUSD is in this link&#x27;s denied symbols" in html
