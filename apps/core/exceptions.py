"""Errors raised by services; the API's exception handler turns them into 4xx answers."""

from __future__ import annotations


class ApplicationError(Exception):
    """A business rule refused the operation (answers 400 unless a subclass says otherwise)."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}


class NotFoundError(ApplicationError):
    """The object is missing or belongs to another organisation (the two look the same)."""

    status_code = 404
    code = "not_found"


class ConflictError(ApplicationError):
    status_code = 409
    code = "conflict"


class PermissionDeniedError(ApplicationError):
    status_code = 403
    code = "permission_denied"
