from django.contrib import admin

from copier.models import Alert, CopyLink, Execution, MasterEventRecord, PositionLink


@admin.register(CopyLink)
class CopyLinkAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "master",
        "follower",
        "sizing_summary",
        "risk_mode",
        "is_active",
        "created_at",
    )
    list_filter = ("is_active", "sizing", "risk_mode")


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "link",
        "kind",
        "status",
        "symbol",
        "volume",
        "price",
        "total_us",
        "reason",
        "created_at",
    )
    list_filter = ("status", "kind")
    search_fields = ("client_order_id", "master_ref", "owner__email")


@admin.register(PositionLink)
class PositionLinkAdmin(admin.ModelAdmin):
    list_display = ("id", "link", "master_ref", "follower_ref", "symbol", "volume", "closed_at")


@admin.register(MasterEventRecord)
class MasterEventRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "account", "seq", "kind", "master_ref", "created_at", "published_at")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "link", "level", "kind", "message", "created_at")
    list_filter = ("level", "kind")
