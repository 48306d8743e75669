"""Errors named after the AWS error codes they serialize to.

The wire layer turns any ``LambdaError`` into an AWS-shaped response: the class's ``code``
becomes ``x-amzn-ErrorType``, ``status`` the HTTP status, and the message goes into the body
under the member name the service model uses for that shape (``message`` or ``Message``).
"""

from __future__ import annotations

from typing import Any


class LambdaError(Exception):
    code = "ServiceException"
    status = 500
    sender_fault = False

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        # Additional modeled members (Reason, Type, ...) and headers (Retry-After).
        self.extra = extra
        self.headers: dict[str, str] = {}


class _UserError(LambdaError):
    status = 400
    sender_fault = True


class ValidationException(_UserError):
    code = "ValidationException"


class InvalidParameterValueException(_UserError):
    code = "InvalidParameterValueException"


class InvalidRequestContentException(_UserError):
    code = "InvalidRequestContentException"


class ResourceInUseException(_UserError):
    code = "ResourceInUseException"


class CodeStorageExceededException(_UserError):
    code = "CodeStorageExceededException"


class PolicyLengthExceededException(_UserError):
    code = "PolicyLengthExceededException"


class ResourceNotFoundException(LambdaError):
    code = "ResourceNotFoundException"
    status = 404
    sender_fault = True


class ResourceConflictException(LambdaError):
    code = "ResourceConflictException"
    status = 409
    sender_fault = True


class PreconditionFailedException(LambdaError):
    code = "PreconditionFailedException"
    status = 412
    sender_fault = True


class RequestTooLargeException(LambdaError):
    code = "RequestTooLargeException"
    status = 413
    sender_fault = True


class RequestEntityTooLargeException(LambdaError):
    """Not in the model, but what AWS sends for oversized invoke payloads and zips."""

    code = "RequestEntityTooLargeException"
    status = 413
    sender_fault = True


class UnsupportedMediaTypeException(LambdaError):
    code = "UnsupportedMediaTypeException"
    status = 415
    sender_fault = True


class TooManyRequestsException(LambdaError):
    code = "TooManyRequestsException"
    status = 429
    sender_fault = True

    def __init__(self, message: str, reason: str, retry_after: int | None = None) -> None:
        super().__init__(message, Reason=reason, Type="User")
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)


class ServiceException(LambdaError):
    code = "ServiceException"
    status = 500


class InvalidZipFileException(LambdaError):
    code = "InvalidZipFileException"
    status = 502


class InvalidRuntimeException(LambdaError):
    code = "InvalidRuntimeException"
    status = 502


class ResourceNotReadyException(LambdaError):
    code = "ResourceNotReadyException"
    status = 502


class UnknownOperationException(LambdaError):
    """No operation of the service model matches the request's method and path."""

    code = "UnknownOperationException"
    status = 404
    sender_fault = True


class NotImplementedException(LambdaError):
    """An operation the model defines that this server does not implement (yet)."""

    code = "NotImplementedException"
    status = 501
    sender_fault = True


class RecursiveInvocationException(_UserError):
    """A chain of invocations went round more times than the function's recursion config allows."""

    code = "RecursiveInvocationException"


class ProvisionedConcurrencyConfigNotFoundException(LambdaError):
    code = "ProvisionedConcurrencyConfigNotFoundException"
    status = 404
    sender_fault = True


class SnapStartException(_UserError):
    """A SnapStart environment's after-restore hook failed."""

    code = "SnapStartException"


class SnapStartNotReadyException(LambdaError):
    """The snapshot of the invoked version is still being made."""

    code = "SnapStartNotReadyException"
    status = 409
    sender_fault = True


class SnapStartTimeoutException(LambdaError):
    """Restoring a SnapStart environment took longer than the restore limit."""

    code = "SnapStartTimeoutException"
    status = 408
    sender_fault = True
