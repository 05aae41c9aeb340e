"""Services of the wechat_accounts app."""
