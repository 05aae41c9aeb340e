"""Admin of the monitoring app."""

from django.contrib import admin

from apps.core.admin import OrgScopedAdmin
from apps.monitoring.models import Notification, NotificationDelivery, NotificationWebhook


@admin.register(Notification)
class NotificationAdmin(OrgScopedAdmin):
    list_display = ["title", "type", "category", "user", "org", "read_at", "created_at"]
    list_filter = ["type", "category", "read_at", "created_at"]
    search_fields = ["title", "message", "user__email"]
    raw_id_fields = ["user"]
    date_hierarchy = "created_at"


@admin.register(NotificationWebhook)
class NotificationWebhookAdmin(OrgScopedAdmin):
    list_display = ["name", "kind", "min_type", "is_active", "org", "created_at"]
    list_filter = ["kind", "min_type", "is_active"]
    search_fields = ["name"]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(OrgScopedAdmin):
    list_display = ["channel", "target", "status", "attempts", "org", "sent_at", "created_at"]
    list_filter = ["channel", "status"]
    search_fields = ["target", "last_error"]
    raw_id_fields = ["notification", "webhook"]
    readonly_fields = ["last_error", "attempts", "sent_at"]
