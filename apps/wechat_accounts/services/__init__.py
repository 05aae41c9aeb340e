"""Writes of the wechat_accounts app: accounts and their state machine, QR login, online
checks, contacts (upsert, sync, CSV), tags, group members, friend requests and Moments.

The outbound pipeline lives in ``apps.conversations.outbound`` (``send``); this app keeps the
send policy it applies (``apps.wechat_accounts.send_policy``).

Functions other apps call:

- ``account_status_change(*, org, account_id, to_status, reason) -> WeChatAccount``
- ``account_find(*, connection, device_id=None, wxid=None) -> WeChatAccount | None``
- ``contact_upsert(*, org, account, wxid, ...) -> Contact`` / ``contact_remove(...)``
- ``friend_request_record(*, org, account, v3, v4, scene, from_wxid, nickname, content)``

Platform calls never run inside a transaction (the call log commits per attempt); each
function does its network call first and then one atomic write.
"""

from apps.wechat_accounts.services._common import (
    OFFLINE_FROM_SEND,
    Status,
)
from apps.wechat_accounts.services.accounts import (
    ACCOUNT_EDITABLE,
    account_create,
    account_delete,
    account_find,
    account_mark_offline_from_send,
    account_mark_seen,
    account_status_change,
    account_update,
)
from apps.wechat_accounts.services.contacts import (
    CONTACT_FIELDS,
    SyncResult,
    account_sync_contacts_start,
    contact_remove,
    contact_update,
    contact_upsert,
    contacts_sync,
    group_members_sync,
)
from apps.wechat_accounts.services.contacts_csv import (
    CONTACT_CSV_COLUMNS,
    TAG_CSV_COLUMNS,
    ImportResult,
    contacts_export_csv,
    contacts_import_csv,
    tags_export_csv,
    tags_import_csv,
)
from apps.wechat_accounts.services.friend_requests import (
    friend_request_accept,
    friend_request_record,
    friend_request_reject,
)
from apps.wechat_accounts.services.login import (
    LoginInfo,
    account_check_online,
    account_confirm_login,
    account_login_poll,
    account_login_start,
    account_login_status,
    account_logout,
    account_reconnect,
    accounts_check_online_schedule,
)
from apps.wechat_accounts.services.moments import (
    moment_cancel,
    moment_create,
    moment_post,
    moment_supported_check,
    moments_post_due,
    moments_timeline_refresh,
)
from apps.wechat_accounts.services.tags import (
    tag_create,
    tag_delete,
    tag_update,
)

__all__ = [
    "ACCOUNT_EDITABLE",
    "CONTACT_CSV_COLUMNS",
    "CONTACT_FIELDS",
    "ImportResult",
    "LoginInfo",
    "OFFLINE_FROM_SEND",
    "Status",
    "SyncResult",
    "TAG_CSV_COLUMNS",
    "account_check_online",
    "account_confirm_login",
    "account_create",
    "account_delete",
    "account_find",
    "account_login_poll",
    "account_login_start",
    "account_login_status",
    "account_logout",
    "account_mark_offline_from_send",
    "account_mark_seen",
    "account_reconnect",
    "account_status_change",
    "account_sync_contacts_start",
    "account_update",
    "accounts_check_online_schedule",
    "contact_remove",
    "contact_update",
    "contact_upsert",
    "contacts_export_csv",
    "contacts_import_csv",
    "contacts_sync",
    "friend_request_accept",
    "friend_request_record",
    "friend_request_reject",
    "group_members_sync",
    "moment_cancel",
    "moment_create",
    "moment_post",
    "moment_supported_check",
    "moments_post_due",
    "moments_timeline_refresh",
    "tag_create",
    "tag_delete",
    "tag_update",
    "tags_export_csv",
    "tags_import_csv",
]
