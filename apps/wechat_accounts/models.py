"""Models of the wechat_accounts app."""
