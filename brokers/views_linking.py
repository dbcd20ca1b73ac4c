"""Linking an exchange account: the form, then progress until the worker decides."""

import json

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from brokers.forms import ExchangeLinkForm, Mt5LinkForm
from brokers.models import LinkRequest, Venue
from brokers.tasks import validate_link


@login_required
@require_http_methods(["GET", "POST"])
def exchange_link(request: HttpRequest) -> HttpResponse:
    form = ExchangeLinkForm(request.POST or None, owner=request.user)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            credentials = {"apiKey": data["api_key"], "secret": data["secret"]}
            if data["passphrase"]:
                credentials["password"] = data["passphrase"]
            link = LinkRequest.objects.create(
                owner=request.user,
                label=data["label"],
                role=data["role"],
                exchange=data["exchange"],
                market_type=data["market_type"],
                sandbox=data["sandbox"],
                credentials=json.dumps(credentials),
                progress="Waiting for a worker…",
            )
            transaction.on_commit(lambda: validate_link.delay(link.pk))
            return redirect("brokers:link_progress", pk=link.pk)
        return render(request, "brokers/exchange_link.html", {"form": form}, status=400)
    return render(request, "brokers/exchange_link.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def mt5_link(request: HttpRequest) -> HttpResponse:
    """Link a MetaTrader 5 account: the farm's terminal logs in before anything is saved."""
    form = Mt5LinkForm(request.POST or None, owner=request.user)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            credentials = {
                "login": data["login"],
                "password": data["password"],
                "server": data["server"],
            }
            link = LinkRequest.objects.create(
                owner=request.user,
                label=data["label"],
                role=data["role"],
                venue=Venue.MT5,
                exchange="MetaTrader 5",
                market_type="",
                credentials=json.dumps(credentials),
                progress="Waiting for a free terminal…",
            )
            return redirect("brokers:link_progress", pk=link.pk)
        return render(request, "brokers/mt5_link.html", {"form": form}, status=400)
    return render(request, "brokers/mt5_link.html", {"form": form})


def _state(link: LinkRequest) -> dict[str, object]:
    return {
        "status": link.status,
        "status_display": link.get_status_display(),
        "progress": link.progress,
        "message": link.message,
        "warnings": [w for w in link.warnings.splitlines() if w],
        "done": link.done,
        "account_url": reverse("brokers:detail", args=[link.account_id])
        if link.account_id
        else None,
    }


@login_required
def link_progress(request: HttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(LinkRequest, pk=pk, owner=request.user)
    return render(request, "brokers/link_progress.html", {"link": link, "state": _state(link)})


@login_required
def link_status(request: HttpRequest, pk: int) -> JsonResponse:
    link = get_object_or_404(LinkRequest, pk=pk, owner=request.user)
    return JsonResponse(_state(link))
