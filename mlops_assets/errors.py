"""Typed errors: each has a stable code and a hint telling the user what to do.

They are raised where the problem is known and surface unchanged as a failed Dagster run or
check, a CLI message, or an API response. The README lists every code.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base class: ``code`` is stable and documented, ``hint`` says what to do next."""

    code = "MLOPS_ERROR"

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"[{self.code}] {message}" + (f". Hint: {hint}" if hint else ""))


class ConfigurationError(MlopsError):
    code = "CONFIG_INVALID"


class ReferenceDataError(MlopsError):
    """The canonical iris data is present but unusable."""

    code = "REFERENCE_DATA_INVALID"


class ContributionUnreadableError(MlopsError):
    """A contributed file cannot be parsed at all (as opposed to having bad rows)."""

    code = "CONTRIBUTION_UNREADABLE"


class UpstreamMissingError(MlopsError):
    """An asset's input has never been materialized."""

    code = "UPSTREAM_MISSING"


class RegistryUnavailableError(MlopsError):
    """The MLflow tracking server / registry cannot be reached."""

    code = "REGISTRY_UNAVAILABLE"


class ModelNotFoundError(MlopsError):
    code = "MODEL_NOT_FOUND"


class ModelIncompatibleError(MlopsError):
    """A model does not fit the task: wrong features, classes or missing methods."""

    code = "MODEL_INCOMPATIBLE"


class UntrustedModelError(MlopsError):
    """A model file would need unsafe deserialization (types outside the allow-list)."""

    code = "MODEL_UNTRUSTED"


class ModelCorruptError(MlopsError):
    """A model file exists but cannot be read: truncated, damaged or not the format it claims."""

    code = "MODEL_CORRUPT"


class RegistryAccessDeniedError(MlopsError):
    """The registry answered 401/403: credentials are missing or wrong (never retried)."""

    code = "REGISTRY_ACCESS_DENIED"


class StorageUnavailableError(MlopsError):
    """An S3 bucket (dataset store or landing zone) is missing, unreachable or refuses us."""

    code = "STORAGE_UNAVAILABLE"


class LandingEntryRefusedError(MlopsError):
    """An entry of the landing zone is not a regular file at ``<contributor>/<file>`` (a
    symbolic link, a device, a FIFO, a path outside the zone, an unsafe name)."""

    code = "LANDING_ENTRY_REFUSED"


class ContributionTooLargeError(MlopsError):
    """A contribution expands past the decompression limits (a zip or gzip bomb)."""

    code = "CONTRIBUTION_TOO_LARGE"
    reason = "too_large_when_decompressed"


class IntakeTimeoutError(MlopsError):
    """An intake ran longer than ``MLOPS_INTAKE_TIMEOUT``."""

    code = "INTAKE_TIMEOUT"


class IntakeFailedError(MlopsError):
    """An intake stopped on a failure of its own (out of memory, disk full), not on the
    contribution's content."""

    code = "INTAKE_FAILED"


# ---- the contributors' door (accounts, the upload API) -------------------------------------
# Each maps to one HTTP status in the upload API (``mlops_assets.portal.api``).


class AccountInvalidError(MlopsError):
    """An account name or display name that cannot be used (the name says why)."""

    code = "ACCOUNT_INVALID"


class AuthenticationError(MlopsError):
    """No token, or one that matches no account: never says which."""

    code = "AUTH_FAILED"


class AccountDisabledError(MlopsError):
    """A valid token of an account the operator disabled."""

    code = "ACCOUNT_DISABLED"


class NotFoundError(MlopsError):
    """No such thing for this account (another account's contribution is not found either:
    its existence is never confirmed)."""

    code = "NOT_FOUND"


class ConflictError(MlopsError):
    """The request clashes with an earlier one (an idempotency key reused for another upload,
    or still in progress; a file name already used)."""

    code = "CONFLICT"


class UploadRefusedError(MlopsError):
    """An upload refused before it is read: its name, license or consent."""

    code = "UPLOAD_REFUSED"


class UploadTooLargeError(MlopsError):
    """An upload past ``MLOPS_PORTAL_MAX_UPLOAD_BYTES``: reading stopped at the limit."""

    code = "UPLOAD_TOO_LARGE"


class RateLimitedError(MlopsError):
    """Too many uploads or failed sign-ins in a window; ``retry_after`` seconds to wait."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, hint: str = "", retry_after: float = 60.0) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
