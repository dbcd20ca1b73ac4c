from django.contrib import admin

from brokers.models import (
    BrokerAccount,
    MasterWatch,
    PaperAccount,
    PaperOrder,
    PaperPosition,
    PaperRequest,
)


class PaperLedgerInline(admin.StackedInline):
    model = PaperAccount
    can_delete = False


@admin.register(BrokerAccount)
class BrokerAccountAdmin(admin.ModelAdmin):
    list_display = ("label", "owner", "venue", "role", "currency", "event_seq", "created_at")
    list_filter = ("venue", "role")
    search_fields = ("label", "owner__email")
    # Credentials never appear in the admin, not even encrypted.
    exclude = ("credentials",)
    inlines = [PaperLedgerInline]


@admin.register(PaperPosition)
class PaperPositionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "account",
        "symbol",
        "side",
        "volume",
        "open_price",
        "opened_at",
        "closed_at",
        "realized_pnl",
    )
    list_filter = ("symbol", "side")
    search_fields = ("account__label", "symbol")


@admin.register(PaperOrder)
class PaperOrderAdmin(admin.ModelAdmin):
    list_display = ("id", "account", "symbol", "side", "order_type", "volume", "price", "status")
    list_filter = ("status", "order_type")


@admin.register(PaperRequest)
class PaperRequestAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "account",
        "client_order_id",
        "action",
        "symbol",
        "side",
        "volume",
        "price",
        "created_at",
    )
    search_fields = ("client_order_id", "account__label")


@admin.register(MasterWatch)
class MasterWatchAdmin(admin.ModelAdmin):
    """How the copier watches each exchange master: staff see stuck or refused watchers here."""

    list_display = ("account", "status", "detail", "fills", "last_fill_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("account__label", "account__owner__email")
    readonly_fields = ("account", "book", "status", "detail", "fills", "last_fill_at")
