"""``make run`` (``run_stack``) tells the platforms (the simulators) to post webhooks to the port
it really serves on, unless ``PUBLIC_BASE_URL`` says otherwise."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings

from apps.core.management.commands.run_stack import public_base_url


@pytest.fixture
def clean_env(monkeypatch, settings):
    # An override layer: what run_stack writes into the settings is dropped after the test.
    settings.PUBLIC_BASE_URL = settings.PUBLIC_BASE_URL
    # setenv first so monkeypatch records the original and undoes what run_stack writes (a bare
    # delenv of an absent variable records nothing, and the value leaked into later tests).
    monkeypatch.setenv("PUBLIC_BASE_URL", "")
    monkeypatch.delenv("PUBLIC_BASE_URL")
    return monkeypatch


def test_derived_from_the_port_served_on(clean_env):
    assert public_base_url("127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert django_settings.PUBLIC_BASE_URL == "http://127.0.0.1:8123"
    assert os.environ["PUBLIC_BASE_URL"] == "http://127.0.0.1:8123"  # for the children


def test_all_interfaces_become_the_loopback_address(clean_env):
    assert public_base_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"  # noqa: S104


def test_an_explicit_value_wins(clean_env):
    clean_env.setenv("PUBLIC_BASE_URL", "https://sales.example.com/")
    assert public_base_url("127.0.0.1", 8123) == "https://sales.example.com"
    assert django_settings.PUBLIC_BASE_URL == "https://sales.example.com"
