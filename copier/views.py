from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from brokers.models import BrokerAccount
from copier.core import FollowerOrder, RiskMode, Side
from copier.core.sizing import fmt
from copier.forms import (
    RISK_ACTIONS,
    SIZING_HELP,
    CopyLinkForm,
    CopyRulesForm,
    PreviewForm,
    ResumeForm,
    time_zones,
)
from copier.models import Alert, CopyLink, Execution
from copier.notify import notify_user
from copier.outbox import bump_links_version
from copier.preview import PREVIEW_VOLUME, preview
from copier.stats import latency_summary

RISK_LABELS = {
    RiskMode.NORMAL: "Normal",
    RiskMode.STOP_OPENING: "New positions stopped",
    RiskMode.CLOSE_ONLY: "Close only",
    RiskMode.PAUSED: "Paused",
}


def _with_risk_label(link: CopyLink) -> CopyLink:
    link.risk_label = RISK_LABELS.get(RiskMode(link.risk_mode), link.risk_mode)  # type: ignore[attr-defined]
    return link


def _live_context(request: HttpRequest) -> dict[str, object]:
    accounts = (
        BrokerAccount.objects.filter(owner=request.user)
        .select_related("paper")
        .prefetch_related("paper_positions")
    )
    executions = list(
        Execution.objects.filter(owner=request.user).select_related(
            "link__follower", "link__master"
        )[:50]
    )
    # Leaders first, so a trade reads left to right from master to followers.
    ordered = sorted(accounts, key=lambda a: (not a.can_lead, a.can_follow, a.label))
    return {
        "accounts": [
            (a, [p for p in a.paper_positions.all() if p.closed_at is None]) for a in ordered
        ],
        "executions": executions,
        "alerts": Alert.objects.filter(owner=request.user).select_related(
            "link__master", "link__follower"
        )[:10],
        "latency": latency_summary(Execution.objects.filter(owner=request.user)),
    }


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "copier/dashboard.html", _live_context(request))


@login_required
def dashboard_live(request: HttpRequest) -> HttpResponse:
    """The live part of the dashboard, fetched again whenever the socket says so."""
    return render(request, "copier/_live.html", _live_context(request))


@login_required
@require_http_methods(["GET", "POST"])
def link_list(request: HttpRequest) -> HttpResponse:
    form = CopyLinkForm(request.POST or None, owner=request.user)
    status = 200
    if request.method == "POST":
        try:
            valid = form.is_valid()
        except ValidationError as e:
            form.add_error(None, e)
            valid = False
        if valid:
            try:
                link = form.instance
                link.save()
            except IntegrityError:
                form.add_error("follower", "That follower already copies that master.")
            else:
                bump_links_version()
                notify_user(request.user.pk, "links")
                messages.success(request, f"{link.follower.label} now copies {link.master.label}.")
                return redirect("copier:links")
        status = 400
    links = [
        _with_risk_label(link)
        for link in CopyLink.objects.filter(owner=request.user).select_related("master", "follower")
    ]
    return render(request, "copier/links.html", {"form": form, "links": links}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def link_delete(request: HttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(CopyLink, pk=pk, owner=request.user)
    if request.method == "POST":
        text = str(link)
        link.delete()
        bump_links_version()
        messages.success(request, f"Deleted the link {text}. Open copies stay open.")
        return redirect("copier:links")
    return render(
        request,
        "copier/link_delete.html",
        {
            "link": link,
            "open_copies": link.position_links.filter(closed_at=None).count(),
        },
    )


def _own_link(request: HttpRequest, pk: int) -> CopyLink:
    # Someone else's link is a 404, exactly like one that does not exist.
    return get_object_or_404(
        CopyLink.objects.select_related("master__paper", "follower__paper"),
        pk=pk,
        owner=request.user,
    )


def _limits_summary(link: CopyLink) -> str:
    """The link's risk stops in words, e.g. "daily loss 500 USD → Stop opening new positions"."""
    parts = []
    for what, value, unit in (
        ("daily loss", link.daily_loss_limit, link.daily_loss_unit),
        ("drawdown", link.max_drawdown, link.max_drawdown_unit),
    ):
        if value is not None:
            amount = (
                f"{fmt(value)}%" if unit == "percent" else f"{fmt(value)} {link.follower.currency}"
            )
            parts.append(f"{what} {amount}")
    if not parts:
        return ""
    return f"{', '.join(parts)} → {dict(RISK_ACTIONS).get(link.risk_action, link.risk_action)}"


def _render_link(
    request: HttpRequest,
    link: CopyLink,
    rules_form: CopyRulesForm | None = None,
    resume_form: ResumeForm | None = None,
) -> HttpResponse:
    """The link page; 400 when any of its forms was filled in wrong."""
    status = 200
    if rules_form is None:
        rules_form = CopyRulesForm(instance=link)
    elif rules_form.errors:
        status = 400
    if resume_form is None:
        resume_form = ResumeForm()
    elif resume_form.errors:
        status = 400
    # The preview runs the saved rules, so it is left out while the rules
    # form shows unsaved input with errors.
    preview_form, result = None, None
    if not rules_form.errors:
        asked = "symbol" in request.GET
        preview_form = PreviewForm(request.GET if asked else None, master=link.master)
        if asked:
            if preview_form.is_valid():
                data = preview_form.cleaned_data
                result = preview(
                    link, data["symbol"], Side(data["side"]), data["price"], data["sl"]
                )
            else:
                status = 400
    context = {
        "link": _with_risk_label(link),
        "limits": _limits_summary(link),
        "form": rules_form,
        "sizing_help": SIZING_HELP,
        "time_zones": time_zones(),
        "resume_form": resume_form,
        "alerts": link.alerts.all()[:20],
        "preview_form": preview_form,
        "result": result,
        "is_order": isinstance(result, FollowerOrder),
        "preview_volume": PREVIEW_VOLUME,
    }
    return render(request, "copier/link.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def link_detail(request: HttpRequest, pk: int) -> HttpResponse:
    link = _own_link(request, pk)
    if request.method != "POST":
        return _render_link(request, link)
    # The form edits its own copy, so the page never shows unsaved values as saved.
    form = CopyRulesForm(request.POST, instance=_own_link(request, pk))
    if not form.is_valid():
        return _render_link(request, link, rules_form=form)
    form.save()
    bump_links_version()
    notify_user(request.user.pk, "links")
    messages.success(request, "Saved the copy rules; the copier uses them from the next trade.")
    url = reverse("copier:link", args=[link.pk])
    # Keep a preview that was on the page, now under the new rules.
    query = request.GET.urlencode()
    return redirect(f"{url}?{query}" if query else url)


@login_required
@require_POST
def link_resume(request: HttpRequest, pk: int) -> HttpResponse:
    link = _own_link(request, pk)
    if link.risk_mode == RiskMode.NORMAL:
        messages.info(request, "This link is copying normally; there was nothing to resume.")
        return redirect("copier:link", pk=link.pk)
    form = ResumeForm(request.POST)
    if not form.is_valid():
        return _render_link(request, link, resume_form=form)
    CopyLink.objects.filter(pk=link.pk).update(
        risk_mode=RiskMode.NORMAL, risk_reason="", risk_tripped_at=None
    )
    Alert.objects.create(
        owner=request.user,
        link=link,
        level=Alert.Level.INFO,
        kind="risk_resumed",
        message=f"Copying resumed by hand after the risk stop: {link.risk_reason}"[:500],
    )
    bump_links_version()
    notify_user(request.user.pk, "links")
    messages.success(request, f"{link.follower.label} copies {link.master.label} again.")
    return redirect("copier:link", pk=link.pk)
