"""Selectors of the wechat_accounts app."""
