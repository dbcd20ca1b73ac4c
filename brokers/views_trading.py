"""The Paper terminal's actions on one open position or one pending order.

Each is a POST with its own ticket id, so a double submit acts once. Refusals
come back as the account page with the form's errors (400); a success
redirects to the page and publishes the master events like the trade ticket.
"""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from brokers.forms import (
    CancelOrderForm,
    ClosePositionForm,
    FillOrderForm,
    ModifyOrderForm,
    PartialCloseForm,
    StopsForm,
    manual_order_id,
    rejection_field,
)
from brokers.models import BrokerAccount, PaperOrder, PaperPosition
from brokers.venues import paper
from brokers.venues.base import OrderRejected, Report
from brokers.views import _announce, _own_account, render_detail, stops_text
from copier.core.plan import fmt

Run = Callable[[dict[str, Any], str], Report]


def _act(
    request: HttpRequest,
    account: BrokerAccount,
    form: forms.Form,
    key: str,
    what: str,
    run: Run,
    message: Callable[[Report], str],
) -> HttpResponse:
    """Validate `form`, carry out `run` with the form's client order id, answer."""
    if form.is_valid():
        try:
            report = run(form.cleaned_data, manual_order_id(form.cleaned_data["ticket_id"]))
        except OrderRejected as e:
            form.add_error(rejection_field(e.message, form), e.message)
        else:
            _announce(request, account, report, message(report))
            return redirect("brokers:detail", pk=account.pk)
    problems = "; ".join(
        f"{form.fields[name].label or name.title()}: {' '.join(errors)}"
        if name in form.fields
        # A refusal that is about no single field, e.g. an already closed position.
        else " ".join(errors)
        for name, errors in form.errors.items()
    )
    messages.error(request, f"Could not {what}: {problems}")
    return render_detail(request, account, bound={key: form})


def _position(request: HttpRequest, pk: int, position_id: int) -> tuple[BrokerAccount, str]:
    account = _own_account(request, pk, paper_only=True)
    position: PaperPosition = get_object_or_404(account.paper_positions, pk=position_id)
    return account, paper.position_ref(position)


def _order(request: HttpRequest, pk: int, order_id: int) -> tuple[BrokerAccount, PaperOrder]:
    account = _own_account(request, pk)
    return account, get_object_or_404(account.paper_orders, pk=order_id)


def _order_text(order: PaperOrder) -> str:
    return f"{order.side} {order.order_type} {fmt(order.volume)} {order.symbol}"


@login_required
@require_POST
def position_close(request: HttpRequest, pk: int, position_id: int) -> HttpResponse:
    account, ref = _position(request, pk, position_id)
    return _act(
        request,
        account,
        ClosePositionForm(request.POST),
        f"close-{position_id}",
        f"close position #{position_id}",
        lambda d, coid: paper.close_position(account.pk, ref, d["price"], coid),
        lambda r: f"Closed {fmt(r.volume)} {r.symbol} at {fmt(r.price)}.",
    )


@login_required
@require_POST
def position_partial_close(request: HttpRequest, pk: int, position_id: int) -> HttpResponse:
    account, ref = _position(request, pk, position_id)
    return _act(
        request,
        account,
        PartialCloseForm(request.POST, auto_id=f"reduce-{position_id}-%s"),
        f"reduce-{position_id}",
        f"close part of position #{position_id}",
        lambda d, coid: paper.close_position(account.pk, ref, d["price"], coid, d["volume"]),
        lambda r: (
            f"Closed {fmt(r.volume)} of {fmt(r.volume + r.remaining)} {r.symbol} at {fmt(r.price)}."
        ),
    )


@login_required
@require_POST
def position_modify(request: HttpRequest, pk: int, position_id: int) -> HttpResponse:
    account, ref = _position(request, pk, position_id)
    return _act(
        request,
        account,
        StopsForm(request.POST, auto_id=f"stops-{position_id}-%s"),
        f"stops-{position_id}",
        f"change the stops of position #{position_id}",
        lambda d, coid: paper.modify_position(account.pk, ref, d["sl"], d["tp"], coid),
        lambda r: f"Position #{position_id} {r.symbol} now has {stops_text(r)}.",
    )


@login_required
@require_POST
def order_modify(request: HttpRequest, pk: int, order_id: int) -> HttpResponse:
    account, order = _order(request, pk, order_id)
    ref = paper.order_ref(order)
    return _act(
        request,
        account,
        ModifyOrderForm(request.POST, auto_id=f"modify-{order_id}-%s"),
        f"modify-{order_id}",
        f"modify order #{order_id}",
        lambda d, coid: paper.modify_order(account.pk, ref, d["price"], d["sl"], d["tp"], coid),
        lambda r: (
            f"Order #{order_id} ({_order_text(order)}) now waits at {fmt(r.price)} "
            f"with {stops_text(r)}."
        ),
    )


@login_required
@require_POST
def order_cancel(request: HttpRequest, pk: int, order_id: int) -> HttpResponse:
    account, order = _order(request, pk, order_id)
    ref = paper.order_ref(order)
    return _act(
        request,
        account,
        CancelOrderForm(request.POST, auto_id=f"cancel-{order_id}-%s"),
        f"cancel-{order_id}",
        f"cancel order #{order_id}",
        lambda d, coid: paper.cancel_order(account.pk, ref, coid),
        lambda r: f"Cancelled order #{order_id}: {_order_text(order)} at {fmt(r.price)}.",
    )


@login_required
@require_POST
def order_fill(request: HttpRequest, pk: int, order_id: int) -> HttpResponse:
    account, order = _order(request, pk, order_id)
    ref = paper.order_ref(order)
    return _act(
        request,
        account,
        FillOrderForm(request.POST, auto_id=f"fill-{order_id}-%s"),
        f"fill-{order_id}",
        f"fill order #{order_id}",
        lambda d, coid: paper.fill_order(account.pk, ref, d["price"], coid),
        lambda r: (
            f"Filled order #{order_id}: {_order_text(order)} at {fmt(r.price)}, "
            f"now position #{r.ref.removeprefix('P')}."
        ),
    )
