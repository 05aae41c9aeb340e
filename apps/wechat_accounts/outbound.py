"""Transitional: the outbound pipeline moved to ``apps.conversations.outbound`` (and the send
policy to ``apps.wechat_accounts.send_policy``). Names still read from here resolve lazily until
every caller is updated; nothing new may import this module."""


def __getattr__(name: str):
    from apps.conversations import outbound

    return getattr(outbound, name)
