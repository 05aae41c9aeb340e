from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = _("Core")

    def ready(self) -> None:
        from celery.signals import after_setup_logger, after_setup_task_logger

        from apps.core import jwt_schema  # noqa: F401 - registers the OpenAPI auth extension
        from apps.core.api import schema  # noqa: F401 - registers the OpenAPI filter extension

        # Celery replaces the root handlers with its own: give those the secret mask too.
        after_setup_logger.connect(_mask_secrets_in_handlers, weak=False)
        after_setup_task_logger.connect(_mask_secrets_in_handlers, weak=False)
        # Django's default handlers (the admin e-mail of a 500 traceback) are configured
        # outside LOGGING: mask theirs too.
        import logging

        _mask_secrets_in_handlers(logging.getLogger())
        for existing in list(logging.Logger.manager.loggerDict.values()):
            if isinstance(existing, logging.Logger):
                _mask_secrets_in_handlers(existing)


def _mask_secrets_in_handlers(logger=None, **kwargs) -> None:
    from apps.core.secrets import SecretMaskingFilter

    for handler in getattr(logger, "handlers", []):
        if not any(isinstance(f, SecretMaskingFilter) for f in handler.filters):
            handler.addFilter(SecretMaskingFilter())
