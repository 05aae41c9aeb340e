"""Global default prices (CNY). Editable in the admin; an organisation's own price overrides.

AI models use provider "*" (any gateway: FastGPT, Dify, OpenAI-compatible) and are priced per
1K tokens. qwen-plus and doubao-pro-32k carry the requirement seed's 0.008 / 0.024; the others
are the vendors' list prices converted to per-1K CNY (gpt-4o-mini: USD 0.15 / 0.60 per 1M at
7.2 CNY/USD). Platform operations (GeWe, E云管家) are per-unit placeholders: set your contract's.
"""

import datetime as dt
from decimal import Decimal

from django.db import migrations

VALID_FROM = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

AI_PRICES = [
    # model, input per 1K, output per 1K
    ("qwen-plus", "0.008", "0.024"),
    ("doubao-pro-32k", "0.008", "0.024"),
    ("qwen-turbo", "0.0003", "0.0006"),
    ("deepseek-chat", "0.002", "0.008"),
    ("gpt-4o-mini", "0.00108", "0.00432"),
]
PLATFORM_PRICES = [
    # operation, price per unit
    ("send_text", "0.002"),
    ("send_image", "0.005"),
    ("send_file", "0.005"),
    ("send_link", "0.003"),
]


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    for model, price_in, price_out in AI_PRICES:
        ModelPrice.objects.get_or_create(
            org=None, provider="*", model=model, valid_from=VALID_FROM,
            defaults={
                "input_price_per_1k": Decimal(price_in),
                "output_price_per_1k": Decimal(price_out),
                "currency": "CNY",
                "note": "default",
            },
        )
    for provider in ("gewe", "ecloud"):
        for operation, unit_price in PLATFORM_PRICES:
            ModelPrice.objects.get_or_create(
                org=None, provider=provider, model=operation, valid_from=VALID_FROM,
                defaults={"unit_price": Decimal(unit_price), "currency": "CNY", "note": "default"},
            )


def unseed(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    ModelPrice.objects.filter(org=None, valid_from=VALID_FROM, note="default").delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
