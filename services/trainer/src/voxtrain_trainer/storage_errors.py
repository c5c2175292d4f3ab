"""Which object-storage errors are worth trying again (the storage was away), and which are not."""

from __future__ import annotations

import urllib3.exceptions
from minio.error import S3Error, ServerError

#: S3 error codes that say "try again later", not "this request is wrong"
TRANSIENT_S3 = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "XMinioServerNotInitialized"}


def transient(exc: BaseException) -> bool:
    """True if ``exc`` says the storage could not be reached or was busy (not that the request was wrong)."""
    if isinstance(exc, S3Error):
        return exc.code in TRANSIENT_S3
    return isinstance(exc, ServerError | urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


class InputUnavailable(Exception):
    """A stored input could not be read (the object storage did not answer): not the input's fault, and worth
    another attempt of the run."""
