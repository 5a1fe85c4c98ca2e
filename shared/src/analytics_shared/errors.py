"""One exception hierarchy for both services.

`transient` tells the ETL's retry loop whether trying again can help; the API maps
`http_status` to its JSON error responses.
"""

from __future__ import annotations


class AnalyticsError(Exception):
    """Base of every error this platform raises on purpose."""

    code = "internal_error"
    transient = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AnalyticsError):
    """Bad or missing configuration: the service cannot start."""

    code = "config_error"


class StorageError(AnalyticsError):
    """The object store failed; retrying may help."""

    code = "storage_error"
    transient = True


class ObjectNotFound(AnalyticsError):
    """The requested object does not exist in the store."""

    code = "not_found"


class PreconditionFailed(AnalyticsError):
    """A conditional write lost: somebody else changed the object first."""

    code = "conflict"


class ManifestError(AnalyticsError):
    """The manifest is malformed or of a format this code does not understand."""

    code = "manifest_invalid"


class IntegrityError(AnalyticsError):
    """A downloaded snapshot does not match the size or sha256 its manifest promises."""

    code = "integrity_error"


class SourceError(AnalyticsError):
    """The source database failed in a way retrying will not fix."""

    code = "source_error"


class TransientSourceError(SourceError):
    """The source connection dropped or timed out; the next attempt may succeed."""

    code = "source_unavailable"
    transient = True
