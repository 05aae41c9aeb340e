"""HTTP clients for the external providers (WeChat platforms and AI services).

Pure Python (no Django): every client goes through ``base.HttpClient`` for timeouts, retries
and per-attempt ``CallRecord``s; errors are the typed classes in ``errors``.
"""

from .base import CallRecord, HttpClient, Recorder, RetryPolicy

__all__ = ["CallRecord", "HttpClient", "Recorder", "RetryPolicy"]
