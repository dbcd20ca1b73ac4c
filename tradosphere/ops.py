"""GET /ops/: the staff operations page (the MT5 farm, exchange watchers, failures)."""

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from brokers.models import MasterWatch, Mt5Agent
from copier.models import Execution


@staff_member_required
def operations(request: HttpRequest) -> HttpResponse:
    agents = list(Mt5Agent.objects.select_related("account__owner", "link_request__owner"))
    used = {a.slot for a in agents}
    now = timezone.now()
    for agent in agents:
        agent.heartbeat_age_s = (
            round((now - agent.heartbeat_at).total_seconds(), 1) if agent.heartbeat_at else None
        )
    context = {
        "agents": agents,
        "free_slots": [s for s in settings.MT5_TERMINAL_SLOTS if s not in used],
        "slot_count": len(settings.MT5_TERMINAL_SLOTS),
        "watches": MasterWatch.objects.select_related("account__owner").order_by("status"),
        "failures": Execution.objects.filter(status=Execution.Status.FAILED)
        .select_related("link")
        .order_by("-id")[:50],
    }
    return render(request, "ops.html", context)
