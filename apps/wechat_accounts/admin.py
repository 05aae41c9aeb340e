"""Admin of the wechat_accounts app."""
