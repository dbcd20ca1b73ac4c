from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from brokers.forms import (
    Bound,
    ExchangeSettingsForm,
    PaperAccountForm,
    RoleForm,
    TradeTicketForm,
    closed_row,
    manual_order_id,
    new_ticket_id,
    order_row,
    position_row,
    rejection_field,
)
from brokers.instruments import PAPER_INSTRUMENTS
from brokers.models import (
    BrokerAccount,
    ExchangeMarkets,
    MasterWatch,
    Mt5Agent,
    PaperAccount,
    PaperOrder,
    PaperRequest,
    Venue,
)
from brokers.venues import paper
from brokers.venues.base import OrderRejected, Report
from brokers.venues.ccxt.capabilities import capabilities
from copier.core import OrderType, Side
from copier.core.plan import fmt
from copier.notify import notify_user
from copier.outbox import bump_links_version, publish_pending


def _own_account(request: HttpRequest, pk: int, paper_only: bool = False) -> BrokerAccount:
    # Someone else's account is a 404, exactly like one that does not exist;
    # so is the Paper terminal of an account that is not Paper.
    venue = {"venue": Venue.PAPER} if paper_only else {}
    return get_object_or_404(BrokerAccount, pk=pk, owner=request.user, **venue)


@login_required
def account_list(request: HttpRequest) -> HttpResponse:
    accounts = BrokerAccount.objects.filter(owner=request.user).select_related("paper")
    return render(request, "brokers/account_list.html", {"accounts": accounts})


@login_required
@require_http_methods(["GET", "POST"])
def account_new(request: HttpRequest) -> HttpResponse:
    form = PaperAccountForm(request.POST or None, owner=request.user)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            with transaction.atomic():
                account = BrokerAccount.objects.create(
                    owner=request.user,
                    venue=Venue.PAPER,
                    label=data["label"],
                    role=data["role"],
                    currency=data["currency"],
                )
                PaperAccount.objects.create(
                    account=account,
                    starting_balance=data["starting_balance"],
                    balance=data["starting_balance"],
                )
            messages.success(request, f"Linked the Paper account “{account.label}”.")
            return redirect("brokers:detail", pk=account.pk)
        return render(request, "brokers/account_new.html", {"form": form}, status=400)
    return render(request, "brokers/account_new.html", {"form": form})


def _detail_context(
    account: BrokerAccount,
    ticket: TradeTicketForm | None = None,
    role_form: RoleForm | None = None,
    bound: Bound | None = None,
) -> dict[str, object]:
    """The account page; `bound` holds a position or order form sent back with errors."""
    bound = bound or {}
    closed_volume = Sum(
        "requests__volume",
        filter=Q(requests__action__in=[PaperRequest.Action.CLOSE, PaperRequest.Action.REDUCE]),
    )
    return {
        "account": account,
        "ticket": ticket
        or TradeTicketForm(
            initial={
                "ticket_id": new_ticket_id(),
                "symbol": "EURUSD",
                "side": "buy",
                "volume": Decimal("1.00"),
                "price": Decimal("1.08500"),
            }
        ),
        "role_form": role_form or RoleForm(initial={"role": account.role}, account=account),
        "open_positions": [
            position_row(p, bound) for p in account.paper_positions.filter(closed_at=None)
        ],
        "pending_orders": [
            order_row(o, bound) for o in account.paper_orders.filter(status=PaperOrder.Status.OPEN)
        ],
        "closed_positions": [
            closed_row(p)
            for p in account.paper_positions.exclude(closed_at=None).annotate(
                closed_volume=closed_volume
            )[:20]
        ],
        "symbols": list(PAPER_INSTRUMENTS),
        "leads": account.follower_links.select_related("follower"),
        "follows": account.master_links.select_related("master"),
    }


@login_required
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    if account.venue == Venue.WEBHOOK:
        from brokers.views_signals import render_source

        return render_source(request, account)
    if account.venue != Venue.PAPER:
        return render_exchange(request, account)
    return render(request, "brokers/account_detail.html", _detail_context(account))


def _market_symbols(account: BrokerAccount) -> set[str]:
    row = ExchangeMarkets.objects.filter(
        exchange=account.exchange, market_type=account.market_type, sandbox=account.sandbox
    ).first()
    return set(row.markets) if row is not None else set()


def render_exchange(
    request: HttpRequest, account: BrokerAccount, form: ExchangeSettingsForm | None = None
) -> HttpResponse:
    if form is None:
        form = ExchangeSettingsForm(
            initial={
                "watch_symbols": account.watch_symbols,
                "leverage": account.leverage,
                "margin_mode": account.margin_mode,
            },
            account=account,
            markets=set(),
        )
    context = {
        "account": account,
        "settings_form": form,
        "watch": MasterWatch.objects.filter(account=account).first(),
        "mt5": Mt5Agent.objects.filter(account=account).first(),
        "needs_symbols": capabilities(account.exchange).my_trades_need_symbol,
    }
    return render(
        request, "brokers/account_exchange.html", context, status=400 if form.errors else 200
    )


@login_required
@require_POST
def exchange_settings(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    if account.venue != Venue.CCXT:
        raise Http404("not an exchange account")
    form = ExchangeSettingsForm(request.POST, account=account, markets=_market_symbols(account))
    if not form.is_valid():
        return render_exchange(request, account, form)
    account.watch_symbols = form.cleaned_data["watch_symbols"]
    account.leverage = form.cleaned_data["leverage"]
    account.margin_mode = form.cleaned_data["margin_mode"] or ""
    account.save(update_fields=["watch_symbols", "leverage", "margin_mode"])
    bump_links_version()
    messages.success(request, f"Saved the copy settings of {account.label}.")
    return redirect("brokers:detail", pk=account.pk)


def render_detail(
    request: HttpRequest,
    account: BrokerAccount,
    ticket: TradeTicketForm | None = None,
    role_form: RoleForm | None = None,
    bound: Bound | None = None,
) -> HttpResponse:
    """The account page again, with the form that failed: nothing was changed."""
    context = _detail_context(account, ticket, role_form, bound)
    return render(request, "brokers/account_detail.html", context, status=400)


def _announce(request: HttpRequest, account: BrokerAccount, report: Report, message: str) -> None:
    if not report.created:
        messages.info(request, "That ticket was already carried out; nothing new was sent.")
        return
    messages.success(request, message)
    if account.can_lead:
        publish_pending(account.pk)
    notify_user(account.owner_id, "trade")


def stops_text(report: Report) -> str:
    sl = f"SL {fmt(report.sl)}" if report.sl is not None else "no SL"
    tp = f"TP {fmt(report.tp)}" if report.tp is not None else "no TP"
    return f"{sl}, {tp}"


def _ticket_message(order_type: OrderType, report: Report) -> str:
    what = f"{fmt(report.volume)} {report.symbol} at {fmt(report.price)}"
    stops = f" ({stops_text(report)})" if report.sl is not None or report.tp is not None else ""
    if order_type is OrderType.MARKET:
        verb = "Bought" if report.side is Side.BUY else "Sold"
        return f"{verb} {what}{stops}."
    number = report.ref.removeprefix("O")
    return f"Placed {report.side.value} {order_type.value} order #{number}: {what}{stops}."


@login_required
@require_POST
def account_trade(request: HttpRequest, pk: int) -> HttpResponse:
    """The trade ticket: a market order opens a position, a limit or stop order waits."""
    account = _own_account(request, pk, paper_only=True)
    form = TradeTicketForm(request.POST)
    if not form.is_valid():
        return render_detail(request, account, ticket=form)
    d = form.cleaned_data
    side, order_type = Side(d["side"]), OrderType(d["order_type"])
    coid = manual_order_id(d["ticket_id"])
    try:
        if order_type is OrderType.MARKET:
            report = paper.open_position(
                account.pk, d["symbol"], side, d["volume"], d["price"], coid, d["sl"], d["tp"]
            )
        else:
            report = paper.place_order(
                account.pk,
                d["symbol"],
                side,
                order_type,
                d["volume"],
                d["price"],
                coid,
                d["sl"],
                d["tp"],
            )
    except OrderRejected as e:
        form.add_error(rejection_field(e.message, form), e.message)
        return render_detail(request, account, ticket=form)
    _announce(request, account, report, _ticket_message(order_type, report))
    return redirect("brokers:detail", pk=account.pk)


@login_required
@require_POST
def account_role(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    form = RoleForm(request.POST, account=account)
    if form.is_valid():
        account.role = form.cleaned_data["role"]
        account.save(update_fields=["role"])
        bump_links_version()
        messages.success(request, f"{account.label} is now: {account.get_role_display()}.")
        return redirect("brokers:detail", pk=account.pk)
    return render_detail(request, account, role_form=form)


@login_required
@require_http_methods(["GET", "POST"])
def account_delete(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    if request.method == "POST":
        label = account.label
        account.delete()
        bump_links_version()
        messages.success(request, f"Removed “{label}” and its copy links.")
        return redirect("brokers:list")
    return render(
        request,
        "brokers/account_delete.html",
        {
            "account": account,
            "open_count": account.paper_positions.filter(closed_at=None).count(),
            "link_count": account.follower_links.count() + account.master_links.count(),
        },
    )
