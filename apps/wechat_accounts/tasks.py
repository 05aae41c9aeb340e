"""Tasks of the wechat_accounts app."""
