from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from brokers.forms import (
    ClosePositionForm,
    PaperAccountForm,
    RoleForm,
    TradeTicketForm,
    manual_order_id,
    new_ticket_id,
)
from brokers.instruments import PAPER_INSTRUMENTS
from brokers.models import BrokerAccount, PaperAccount, Venue
from brokers.venues import paper
from brokers.venues.base import OrderRejected, Report
from copier.core import Side
from copier.core.plan import fmt
from copier.notify import notify_user
from copier.outbox import bump_links_version, publish_pending


def _own_account(request: HttpRequest, pk: int) -> BrokerAccount:
    # Someone else's account is a 404, exactly like one that does not exist.
    return get_object_or_404(BrokerAccount, pk=pk, owner=request.user)


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
) -> dict[str, object]:
    open_positions = account.paper_positions.filter(closed_at=None)
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
        "open_positions": [(p, new_ticket_id()) for p in open_positions],
        "closed_positions": account.paper_positions.exclude(closed_at=None)[:20],
        "symbols": list(PAPER_INSTRUMENTS),
        "leads": account.follower_links.select_related("follower"),
        "follows": account.master_links.select_related("master"),
    }


@login_required
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    return render(request, "brokers/account_detail.html", _detail_context(account))


def _announce(request: HttpRequest, account: BrokerAccount, report: Report, what: str) -> None:
    if not report.created:
        messages.info(request, "That ticket was already filled; nothing new was sent.")
        return
    messages.success(
        request, f"{what} {fmt(report.volume)} {report.symbol} at {fmt(report.price)}."
    )
    if account.can_lead:
        publish_pending(account.pk)
    notify_user(account.owner_id, "trade")


@login_required
@require_POST
def account_trade(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    form = TradeTicketForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        side = Side(data["side"])
        try:
            report = paper.open_position(
                account.pk,
                data["symbol"],
                side,
                data["volume"],
                data["price"],
                manual_order_id(data["ticket_id"]),
            )
        except OrderRejected as e:
            form.add_error("price" if e.message.startswith("price") else "volume", e.message)
        else:
            _announce(request, account, report, "Bought" if side is Side.BUY else "Sold")
            return redirect("brokers:detail", pk=account.pk)
    return render(
        request, "brokers/account_detail.html", _detail_context(account, ticket=form), status=400
    )


@login_required
@require_POST
def position_close(request: HttpRequest, pk: int, position_id: int) -> HttpResponse:
    account = _own_account(request, pk)
    position = get_object_or_404(account.paper_positions, pk=position_id)
    form = ClosePositionForm(request.POST)
    if form.is_valid():
        try:
            report = paper.close_position(
                account.pk,
                paper.position_ref(position),
                form.cleaned_data["price"],
                manual_order_id(form.cleaned_data["ticket_id"]),
            )
        except OrderRejected as e:
            messages.error(request, f"Could not close: {e.message}.")
            return redirect("brokers:detail", pk=account.pk)
        _announce(request, account, report, "Closed")
        return redirect("brokers:detail", pk=account.pk)
    errors = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
    messages.error(request, f"Could not close: {errors}")
    return render(request, "brokers/account_detail.html", _detail_context(account), status=400)


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
    return render(
        request,
        "brokers/account_detail.html",
        _detail_context(account, role_form=form),
        status=400,
    )


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
