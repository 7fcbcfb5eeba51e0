"""The store's errors, each with its place in the API contract."""

from __future__ import annotations

from refapi.errors import ApiError


class KeyNotFound(ApiError):
    status = 404
    code = "KEY_NOT_FOUND"
    title = "Key Not Found"


class VersionMismatch(ApiError):
    """If-Match named a version that is not the stored one; ``current_version`` says which is."""

    status = 412
    code = "VERSION_MISMATCH"
    title = "Version Mismatch"


class AlreadyExists(ApiError):
    """If-None-Match: * asked to create a key that is already there."""

    status = 412
    code = "ALREADY_EXISTS"
    title = "Key Already Exists"


class InvalidPrecondition(ApiError):
    status = 400
    code = "INVALID_PRECONDITION"
    title = "Invalid Precondition"


class ValueTooLarge(ApiError):
    status = 413
    code = "VALUE_TOO_LARGE"
    title = "Value Too Large"


class VersionExhausted(ApiError):
    """A write to a key already at the highest version (``MAX_VERSION``)."""

    status = 409
    code = "VERSION_EXHAUSTED"
    title = "Version Exhausted"
