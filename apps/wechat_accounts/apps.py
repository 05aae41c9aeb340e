from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WechatAccountsConfig(AppConfig):
    name = "apps.wechat_accounts"
    label = "wechat_accounts"
    verbose_name = _("WeChat accounts")

    def ready(self) -> None:
        from apps.wechat_accounts import webhook_handlers

        webhook_handlers.register()
