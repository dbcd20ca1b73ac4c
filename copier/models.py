import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from brokers.models import BrokerAccount
from copier.core import (
    CopyRules,
    DeviationUnit,
    LimitUnit,
    RiskAction,
    RiskLimit,
    RiskMode,
    Side,
    Sizing,
)
from copier.core.rules_text import parse_symbol_map, parse_symbols, parse_time_windows
from copier.core.sizing import fmt

DECIMAL = {"max_digits": 20, "decimal_places": 8}
OPTIONAL_DECIMAL = {**DECIMAL, "null": True, "blank": True}


class CopyLink(models.Model):
    """A master account copied to a follower account, with the copy rules."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="copy_links"
    )
    master = models.ForeignKey(
        BrokerAccount, on_delete=models.CASCADE, related_name="follower_links"
    )
    follower = models.ForeignKey(
        BrokerAccount, on_delete=models.CASCADE, related_name="master_links"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Lot sizing.
    sizing = models.CharField(
        max_length=16, choices=[(s.value, s.value) for s in Sizing], default=Sizing.MULTIPLIER
    )
    sizing_value = models.DecimalField(**DECIMAL, default=Decimal(1))
    force_min = models.BooleanField(default=False)
    # Symbols.
    symbol_map = models.TextField(blank=True, default="")
    master_prefix = models.CharField(max_length=16, blank=True, default="")
    master_suffix = models.CharField(max_length=16, blank=True, default="")
    follower_prefix = models.CharField(max_length=16, blank=True, default="")
    follower_suffix = models.CharField(max_length=16, blank=True, default="")
    # Filters.
    symbols_allowed = models.TextField(blank=True, default="")
    symbols_denied = models.TextField(blank=True, default="")
    copy_buys = models.BooleanField(default=True)
    copy_sells = models.BooleanField(default=True)
    min_master_volume = models.DecimalField(**OPTIONAL_DECIMAL)
    max_master_volume = models.DecimalField(**OPTIONAL_DECIMAL)
    max_open_positions = models.PositiveIntegerField(null=True, blank=True)
    time_windows = models.TextField(blank=True, default="")
    time_zone = models.CharField(max_length=64, default="UTC")
    max_signal_age_ms = models.PositiveIntegerField(null=True, blank=True)
    max_price_deviation = models.DecimalField(**OPTIONAL_DECIMAL)
    price_deviation_unit = models.CharField(
        max_length=8,
        choices=[(u.value, u.value) for u in DeviationUnit],
        default=DeviationUnit.POINTS,
    )
    # Direction and stops.
    reverse = models.BooleanField(default=False)
    copy_sl = models.BooleanField(default=True)
    copy_tp = models.BooleanField(default=True)
    fixed_sl_points = models.DecimalField(**OPTIONAL_DECIMAL)
    fixed_tp_points = models.DecimalField(**OPTIONAL_DECIMAL)
    sl_offset_points = models.DecimalField(**DECIMAL, default=Decimal(0))
    tp_offset_points = models.DecimalField(**DECIMAL, default=Decimal(0))
    # Modes.
    close_only = models.BooleanField(default=False)
    copy_pending = models.BooleanField(default=True)
    # Follower risk stops, and the state they put the link in.
    daily_loss_limit = models.DecimalField(**OPTIONAL_DECIMAL)
    daily_loss_unit = models.CharField(
        max_length=8, choices=[(u.value, u.value) for u in LimitUnit], default=LimitUnit.AMOUNT
    )
    max_drawdown = models.DecimalField(**OPTIONAL_DECIMAL)
    max_drawdown_unit = models.CharField(
        max_length=8, choices=[(u.value, u.value) for u in LimitUnit], default=LimitUnit.AMOUNT
    )
    risk_action = models.CharField(
        max_length=24,
        choices=[(a.value, a.value) for a in RiskAction],
        default=RiskAction.STOP_OPENING,
    )
    risk_mode = models.CharField(
        max_length=16, choices=[(m.value, m.value) for m in RiskMode], default=RiskMode.NORMAL
    )
    risk_reason = models.CharField(max_length=300, blank=True, default="")
    risk_tripped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["master__label", "follower__label", "id"]
        constraints = [
            models.UniqueConstraint(fields=["master", "follower"], name="unique_master_follower"),
            models.CheckConstraint(
                condition=~models.Q(master=models.F("follower")), name="link_not_to_itself"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.master.label} → {self.follower.label} ({self.sizing_summary})"

    @property
    def sizing_summary(self) -> str:
        value = fmt(self.sizing_value)
        return {
            Sizing.FIXED: f"{value} lots",
            Sizing.MULTIPLIER: f"×{value}",
            Sizing.BALANCE_RATIO: f"balance ratio ×{value}",
            Sizing.EQUITY_RATIO: f"equity ratio ×{value}",
            Sizing.RISK_PERCENT: f"risk {value}%",
            Sizing.FIXED_NOTIONAL: f"notional {value}",
        }[Sizing(self.sizing)]

    def rules(self) -> CopyRules:
        """The link's rules as core values; fields were validated on save by the form."""
        sides = frozenset(
            side for side, on in ((Side.BUY, self.copy_buys), (Side.SELL, self.copy_sells)) if on
        )
        return CopyRules(
            sizing=Sizing(self.sizing),
            sizing_value=self.sizing_value,
            force_min=self.force_min,
            symbol_map=parse_symbol_map(self.symbol_map),
            master_prefix=self.master_prefix,
            master_suffix=self.master_suffix,
            follower_prefix=self.follower_prefix,
            follower_suffix=self.follower_suffix,
            symbols_allowed=parse_symbols(self.symbols_allowed),
            symbols_denied=parse_symbols(self.symbols_denied),
            sides=sides,
            min_master_volume=self.min_master_volume,
            max_master_volume=self.max_master_volume,
            max_open_positions=self.max_open_positions,
            time_windows=parse_time_windows(self.time_windows),
            time_zone=zoneinfo.ZoneInfo(self.time_zone),
            max_signal_age_ms=self.max_signal_age_ms,
            max_price_deviation=self.max_price_deviation,
            price_deviation_unit=DeviationUnit(self.price_deviation_unit),
            reverse=self.reverse,
            copy_sl=self.copy_sl,
            copy_tp=self.copy_tp,
            fixed_sl_points=self.fixed_sl_points,
            fixed_tp_points=self.fixed_tp_points,
            sl_offset_points=self.sl_offset_points,
            tp_offset_points=self.tp_offset_points,
            close_only=self.close_only,
            copy_pending=self.copy_pending,
            daily_loss_limit=_limit(self.daily_loss_limit, self.daily_loss_unit),
            max_drawdown=_limit(self.max_drawdown, self.max_drawdown_unit),
            risk_action=RiskAction(self.risk_action),
        )

    def clean(self) -> None:
        validate_link(self)


def _limit(value: Decimal | None, unit: str) -> RiskLimit | None:
    return None if value is None else RiskLimit(value, LimitUnit(unit))


def validate_link(link: CopyLink) -> None:
    """Field-keyed errors for a link that must not exist."""
    master, follower = link.master, link.follower
    if master.pk == follower.pk:
        raise ValidationError({"follower": "An account cannot follow itself."})
    if master.owner_id != link.owner_id or follower.owner_id != link.owner_id:
        raise ValidationError("Both accounts must be yours.")
    if not master.can_lead:
        raise ValidationError(
            {"master": f"{master.label} is a follower account; make it a master to lead."}
        )
    if not follower.can_follow:
        raise ValidationError(
            {"follower": f"{follower.label} is a master account; make it a follower to copy."}
        )
    if link.sizing_value is not None and link.sizing_value <= 0:
        raise ValidationError({"sizing_value": "The sizing value must be greater than 0."})
    duplicate = CopyLink.objects.filter(master=master, follower=follower).exclude(pk=link.pk)
    if duplicate.exists():
        raise ValidationError({"follower": f"{follower.label} already copies {master.label}."})
    if _reaches(link.owner_id, follower.pk, master.pk, exclude_link=link.pk):
        raise ValidationError(
            {
                "follower": f"{master.label} already copies {follower.label} through a chain of "
                "links; this link would make trades copy in a circle."
            }
        )


def _reaches(owner_id: int, start: int, target: int, exclude_link: int | None) -> bool:
    """Whether trades on `start` already flow to `target` through links."""
    edges: dict[int, list[int]] = {}
    links = CopyLink.objects.filter(owner_id=owner_id).exclude(pk=exclude_link)
    for master_id, follower_id in links.values_list("master_id", "follower_id"):
        edges.setdefault(master_id, []).append(follower_id)
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == target:
            return True
        for nxt in edges.get(node, []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


class MasterEventRecord(models.Model):
    """The outbox and log of master events.

    A venue writes the record in the same transaction as the fill that caused
    it, so an event can be published late but never lost. Published events
    carry `published_at`; the copier republishes any that lack it.
    """

    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=32)
    master_ref = models.CharField(max_length=64)
    payload = models.JSONField()
    # The id a remote detector gave the event (an MT5 agent's message id), so an
    # event delivered twice is recorded once.
    external_id = models.CharField(max_length=40, null=True, blank=True)  # noqa: DJ001 - NULL: no id
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "seq"], name="unique_event_seq"),
            models.UniqueConstraint(
                fields=["account", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="unique_external_event",
            ),
        ]
        indexes = [models.Index(fields=["published_at", "created_at"])]

    def __str__(self) -> str:
        return f"{self.account_id}#{self.seq} {self.kind} {self.master_ref}"


class PositionLink(models.Model):
    """Which follower position (or pending order) copies which master one, per link."""

    link = models.ForeignKey(CopyLink, on_delete=models.CASCADE, related_name="position_links")
    master_ref = models.CharField(max_length=64)
    follower_ref = models.CharField(max_length=64)
    is_order = models.BooleanField(default=False)
    order_type = models.CharField(max_length=8, default="market")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    volume = models.DecimalField(**DECIMAL)
    price = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    sl = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    tp = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by_hand = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["link", "master_ref"], name="one_copy_per_master_pos"),
        ]

    def __str__(self) -> str:
        return f"{self.master_ref} → {self.follower_ref}"


class Alert(models.Model):
    """Something a trader must know about: a risk stop, a rejected order."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts"
    )
    link = models.ForeignKey(
        CopyLink, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.WARNING)
    kind = models.CharField(max_length=32)
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["owner", "-id"])]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class Execution(models.Model):
    """What the copier did for one follower about one master event.

    The t_* fields are monotonic nanoseconds from the copier's clock; only
    their differences mean anything.
    """

    class Status(models.TextChoices):
        FILLED = "filled", "Filled"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="executions"
    )
    link = models.ForeignKey(CopyLink, on_delete=models.CASCADE, related_name="executions")
    client_order_id = models.CharField(max_length=48, unique=True)
    action = models.CharField(max_length=16, blank=True)
    master_ref = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=300, blank=True)
    sl = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    tp = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, blank=True)
    volume = models.DecimalField(max_digits=20, decimal_places=8, null=True, blank=True)
    price = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    follower_ref = models.CharField(max_length=64, blank=True)
    signal_age_ms = models.IntegerField(null=True, blank=True)
    t_detected_ns = models.BigIntegerField()
    t_planned_ns = models.BigIntegerField()
    t_sent_ns = models.BigIntegerField(null=True, blank=True)
    t_acked_ns = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["owner", "-id"])]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.status}"

    @staticmethod
    def _us(start: int | None, end: int | None) -> int | None:
        if start is None or end is None:
            return None
        return (end - start) // 1000

    @property
    def plan_us(self) -> int | None:
        return self._us(self.t_detected_ns, self.t_planned_ns)

    @property
    def send_us(self) -> int | None:
        return self._us(self.t_planned_ns, self.t_sent_ns)

    @property
    def ack_us(self) -> int | None:
        return self._us(self.t_sent_ns, self.t_acked_ns)

    @property
    def total_us(self) -> int | None:
        return self._us(self.t_detected_ns, self.t_acked_ns)
