"""Settings that are plain data, read by no environment variable: the OpenAPI schema's and the
console theme's colours, the log formats. Kept apart so config/settings/base.py stays readable."""

SPECTACULAR_SETTINGS = {
    "TITLE": "AI Sales Assistant API",
    "DESCRIPTION": (
        "Multi-tenant API of the AI sales assistant. Authenticate with a JWT access token "
        "(`Authorization: Bearer <token>`); choose the active organisation with the "
        "`X-Organization` header (slug or id), else the user's default organisation is used. "
        'Errors always have the shape `{"error": {"code", "message", "fields"?}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.api.schema.add_organization_header",
        # console (issue 15): one readable tag per area and a summary on every operation.
        "apps.core.api.schema_summaries.add_tags_and_summaries",
        # harden: the 400/401/403/404/409/429 answers in the one error shape.
        "apps.core.api.schema_errors.add_error_responses",
    ],
    # Self-hosted UI assets: no CDN (unreachable offline, unreliable from mainland China).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        # monitoring (notifications) and orgs roles, shared by several serializers
        "NotificationTypeEnum": "apps.monitoring.models.Notification.Type",
        "RoleEnum": "apps.orgs.models.Role",
        # wechat_accounts
        "WeChatAccountStatusEnum": "apps.wechat_accounts.models.WeChatAccount.Status",
        "ReplyPolicyEnum": "apps.wechat_accounts.models.ReplyPolicy",
        "MomentPostStatusEnum": "apps.wechat_accounts.models.MomentPost.Status",
        "FriendRequestStatusEnum": "apps.wechat_accounts.models.FriendRequest.Status",
        "ContactSyncStateEnum": "apps.wechat_accounts.models.WeChatAccount.SyncState",
        "MessageStatusEnum": "apps.conversations.models.Message.Status",
        # conversations
        "ConversationStatusEnum": "apps.conversations.models.Conversation.Status",
        "MessageKindEnum": "apps.conversations.models.Message.Kind",
        "OutboundKindEnum": ["text", "image", "file", "link"],
        # media
        "ReplyKindEnum": ["text", "image", "file", "video", "link"],
        "MediaFileKindEnum": "apps.media.models.MediaFile.Kind",
        "MediaFileSourceEnum": "apps.media.models.MediaFile.Source",
        "SopStepKindEnum": "apps.sop.models.SopStep.Kind",
        # sop
        "SopPlanStatusEnum": "apps.sop.models.SopPlan.Status",
        "SopRunStatusEnum": "apps.sop.models.SopRun.Status",
        "SopDeliveryStatusEnum": "apps.sop.models.SopDelivery.Status",
    },
}

# The console theme (django-unfold): the primary colour scale.
UNFOLD_COLORS = {
    "primary": {
        "50": "oklch(97.9% .021 166.113)",
        "100": "oklch(95% .052 163.051)",
        "200": "oklch(90.5% .093 164.15)",
        "300": "oklch(84.5% .143 164.978)",
        "400": "oklch(76.5% .177 163.223)",
        "500": "oklch(69.6% .17 162.48)",
        "600": "oklch(59.6% .145 163.225)",
        "700": "oklch(50.8% .118 165.612)",
        "800": "oklch(43.2% .095 166.913)",
        "900": "oklch(37.8% .077 168.94)",
        "950": "oklch(26.2% .051 172.552)",
    },
}

# Log line formats (LOG_FORMAT picks one); the context fields come from apps.core.logcontext.
LOG_FORMATTERS = {
    "text": {
        "format": "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s org=%(org_id)s "
        "user=%(user_id)s task=%(task_id)s] %(message)s"
    },
    "json": {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        "json_ensure_ascii": False,
    },
}
