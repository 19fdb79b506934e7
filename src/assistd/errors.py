"""The exception tree. Every error a client can see is one of these.

    APIError                      (500 server_error: the base, also "unexpected")
    ├── InvalidRequestError       400 invalid_request_error, carries ``param``
    ├── AuthenticationError       401 invalid_request_error / invalid_api_key
    ├── PermissionDeniedError     403
    ├── NotFoundError             404 invalid_request_error
    ├── PayloadTooLargeError      413 invalid_request_error
    └── RateLimitError            429 rate_limit_exceeded
        ├── QuotaExceededError    429 insufficient_quota (a project's token budget)
        └── RequestRateLimitError 429 requests / rate_limit_exceeded (a key's RPM)

Services raise them; ``assistd.http.errors`` maps them to OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}`` in exactly one place.
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """Base of every client-visible error."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(APIError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(APIError):
    status_code = 401
    error_type = "invalid_request_error"


class PermissionDeniedError(APIError):
    status_code = 403
    error_type = "invalid_request_error"


class NotFoundError(APIError):
    status_code = 404
    error_type = "invalid_request_error"


class PayloadTooLargeError(APIError):
    status_code = 413
    error_type = "invalid_request_error"


class RateLimitError(APIError):
    status_code = 429
    error_type = "rate_limit_exceeded"


class QuotaExceededError(RateLimitError):
    """A project spent its token budget: OpenAI's answer to an account out of credit."""

    error_type = "insufficient_quota"

    def __init__(self) -> None:
        super().__init__(
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            code="insufficient_quota",
        )


class RequestRateLimitError(RateLimitError):
    """A key made more requests per minute than allowed (OpenAI's type ``requests``)."""

    error_type = "requests"

    def __init__(self, project: str, limit: int, retry_after: float) -> None:
        super().__init__(
            f"Rate limit reached for requests in project {project} on requests per min "
            f"(RPM): Limit {limit}, Used {limit}, Requested 1. Please try again in "
            f"{retry_after:.3g}s.",
            code="rate_limit_exceeded",
        )
        self.retry_after = retry_after


def not_found(kind: str, object_id: str, *, param: str | None = None) -> NotFoundError:
    """OpenAI's wording: "No assistant found with id 'asst_x'."."""
    return NotFoundError(f"No {kind} found with id '{object_id}'.", param=param)
