"""Latency percentiles of executions, for the dashboard."""

import math

from django.db.models import QuerySet

from copier.models import Execution


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(executions: "QuerySet[Execution]", last: int = 500) -> dict[str, object]:
    rows = list(
        executions.filter(status=Execution.Status.FILLED, t_acked_ns__isnull=False)
        .order_by("-id")
        .values_list("t_detected_ns", "t_planned_ns", "t_sent_ns", "t_acked_ns")[:last]
    )
    if not rows:
        return {"count": 0}
    total = sorted((a - d) // 1000 for d, _p, _s, a in rows)
    plan = sorted((p - d) // 1000 for d, p, _s, _a in rows)
    ack = sorted((a - s) // 1000 for _d, _p, s, a in rows)
    return {
        "count": len(rows),
        "total_p50_us": percentile(total, 50),
        "total_p99_us": percentile(total, 99),
        "plan_p50_us": percentile(plan, 50),
        "ack_p50_us": percentile(ack, 50),
    }
