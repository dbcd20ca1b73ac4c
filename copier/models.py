from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from brokers.models import BrokerAccount
from copier.core import CopyRules


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
    multiplier = models.DecimalField(max_digits=12, decimal_places=4, default=1)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["master__label", "follower__label", "id"]
        constraints = [
            models.UniqueConstraint(fields=["master", "follower"], name="unique_master_follower"),
            models.CheckConstraint(
                condition=~models.Q(master=models.F("follower")), name="link_not_to_itself"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.master.label} → {self.follower.label} ×{self.multiplier.normalize()}"

    def rules(self) -> CopyRules:
        return CopyRules(multiplier=self.multiplier)

    def clean(self) -> None:
        validate_link(self)


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
    if link.multiplier is not None and link.multiplier <= 0:
        raise ValidationError({"multiplier": "The multiplier must be greater than 0."})
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
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "seq"], name="unique_event_seq"),
        ]
        indexes = [models.Index(fields=["published_at", "created_at"])]

    def __str__(self) -> str:
        return f"{self.account_id}#{self.seq} {self.kind} {self.master_ref}"


class PositionLink(models.Model):
    """Which follower position copies which master position, per copy link."""

    link = models.ForeignKey(CopyLink, on_delete=models.CASCADE, related_name="position_links")
    master_ref = models.CharField(max_length=64)
    follower_ref = models.CharField(max_length=64)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    volume = models.DecimalField(max_digits=20, decimal_places=8)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["link", "master_ref"], name="one_copy_per_master_pos"),
        ]

    def __str__(self) -> str:
        return f"{self.master_ref} → {self.follower_ref}"


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
    master_ref = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=300, blank=True)
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
