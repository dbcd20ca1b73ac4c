from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from brokers.models import BrokerAccount
from copier.forms import CopyLinkForm
from copier.models import CopyLink, Execution
from copier.notify import notify_user
from copier.outbox import bump_links_version
from copier.stats import latency_summary


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
    links = CopyLink.objects.filter(owner=request.user).select_related("master", "follower")
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
