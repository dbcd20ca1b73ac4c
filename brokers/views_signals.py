"""Signal sources: create one, see its URL and template, change its settings, rotate or
revoke its token."""

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from brokers.forms import LabelledAccountForm
from brokers.hooks import forget_source, new_secret, new_token, token_hash
from brokers.models import BrokerAccount, SignalSource, Venue
from copier.outbox import bump_links_version

TEMPLATE = """{
  "action": "{{strategy.order.action}}",
  "ticker": "{{ticker}}",
  "qty": "{{strategy.order.contracts}}",
  "price": "{{close}}",
  "alert_id": "{{strategy.order.id}}-{{timenow}}",
  "comment": "{{strategy.order.comment}}"
}"""


class SourceOptionsForm(forms.Form):
    """How a source treats its alerts: set at creation, changed on its page."""

    equity = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("1"),
        initial=Decimal("10000"),
        help_text="What qty_pct and risk_pct sizes refer to.",
    )
    dedup_window_s = forms.IntegerField(
        min_value=0,
        max_value=86400,
        initial=60,
        label="Duplicate window (s)",
        help_text="The same alert_id, or the same body, within this window is not copied twice.",
    )
    position_aware = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Refuse a buy while long (and a sell while short) unless pyramiding is on.",
    )
    allow_pyramiding = forms.BooleanField(required=False)
    require_signature = forms.BooleanField(
        required=False,
        help_text="Also require an HMAC-SHA256 signature header with a timestamp (5 minutes).",
    )


class SignalSourceForm(LabelledAccountForm, SourceOptionsForm):
    pass


OPTIONS = list(SourceOptionsForm.base_fields)


def _hook_url(request: HttpRequest, token: str) -> str:
    return request.build_absolute_uri(f"/hooks/{token}")


@login_required
@require_http_methods(["GET", "POST"])
def source_new(request: HttpRequest) -> HttpResponse:
    form = SignalSourceForm(request.POST or None, owner=request.user)
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "brokers/signal_new.html", {"form": form}, status=400)
        with transaction.atomic():
            source, token, secret = SignalSource.open(
                request.user,
                form.cleaned_data["label"],
                **{o: form.cleaned_data[o] for o in OPTIONS},
            )
        account = source.account
        bump_links_version()
        return _show_once(request, account, token, secret)
    return render(request, "brokers/signal_new.html", {"form": form})


def _show_once(
    request: HttpRequest, account: BrokerAccount, token: str, secret: str
) -> HttpResponse:
    """The only time the URL (and the signing secret) is shown: only hashes are kept."""
    context = {
        "account": account,
        "source": account.signal_source,
        "url": _hook_url(request, token),
        "secret": secret,
        "template": TEMPLATE,
        "signals": [],
    }
    return render(request, "brokers/signal_source.html", context)


def render_source(
    request: HttpRequest,
    account: BrokerAccount,
    form: SourceOptionsForm | None = None,
    secret: str = "",
    status: int = 200,
) -> HttpResponse:
    source = account.signal_source
    context = {
        "account": account,
        "source": source,
        "url": request.build_absolute_uri("/hooks/") + "…" + source.token_hint,
        "secret": secret,
        "template": TEMPLATE,
        "signals": source.signals.order_by("-id")[:100],
        "positions": source.positions.all(),
        "options": form or SourceOptionsForm(initial={f: getattr(source, f) for f in OPTIONS}),
    }
    return render(request, "brokers/signal_source.html", context, status=status)


def _own_source(request: HttpRequest, pk: int) -> BrokerAccount:
    return get_object_or_404(
        BrokerAccount.objects.select_related("signal_source"),
        pk=pk,
        owner=request.user,
        venue=Venue.WEBHOOK,
    )


@login_required
@require_POST
def source_settings(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_source(request, pk)
    source = account.signal_source
    form = SourceOptionsForm(request.POST)
    if not form.is_valid():
        return render_source(request, account, form=form, status=400)
    data = form.cleaned_data
    secret = ""
    if data["require_signature"] and not source.require_signature:
        secret = new_secret()  # shown once, below
        source.hmac_secret = secret
    elif not data["require_signature"]:
        source.hmac_secret = ""
    for name in OPTIONS:
        setattr(source, name, data[name])
    source.save(update_fields=[*OPTIONS, "hmac_secret"])
    # The intake keeps configs in Redis and for seconds in each web process;
    # dropping the Redis copy makes both read the new settings at once.
    transaction.on_commit(lambda: forget_source(source.token_hash))
    messages.success(request, "Settings saved; alerts from now on follow them.")
    if secret:
        return render_source(request, account, secret=secret)
    return redirect(reverse("brokers:detail", args=[account.pk]))


@login_required
@require_POST
def source_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_source(request, pk)
    source = account.signal_source
    old = source.token_hash
    token = new_token()
    source.token_hash, source.token_hint, source.revoked_at = token_hash(token), token[-4:], None
    source.save(update_fields=["token_hash", "token_hint", "revoked_at"])
    transaction.on_commit(lambda: forget_source(old))
    messages.success(request, "A new URL: the old one stopped working now.")
    return _show_once(request, account, token, "")


@login_required
@require_http_methods(["GET", "POST"])
def source_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_source(request, pk)
    if request.method == "GET":
        return render(request, "brokers/signal_revoke.html", {"account": account})
    source = account.signal_source
    source.revoked_at = timezone.now()
    source.save(update_fields=["revoked_at"])
    transaction.on_commit(lambda: forget_source(source.token_hash))
    messages.success(request, f"The URL of {account.label} is revoked: alerts to it get 404.")
    return redirect(reverse("brokers:detail", args=[account.pk]))
