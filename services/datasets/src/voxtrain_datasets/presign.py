"""Presigned part URLs that carry their length: AWS Signature V4 in the query string with ``content-length``
among the signed headers, so storage refuses (403 ``SignatureDoesNotMatch``) a PUT of any other length —
and a chunked PUT, which has none. A URL may sign more headers (a part's ``x-amz-checksum-sha256``): the PUT
must then carry each with the signed value.

minio-py's ``get_presigned_url`` signs the ``host`` header only, so the canonical request is built here,
on minio-py's own URL builder, credentials and signing-key helpers (its private API, like the multipart
calls in :mod:`.storage`; the direct-upload integration tests pin the behaviour against a real MinIO).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import SplitResult, urlunsplit

from minio import Minio, time
from minio.helpers import queryencode, sha256_hash
from minio.signer import _get_canonical_query_string, _get_scope, _get_signature, _get_signing_key, _get_string_to_sign


def presigned_put(
    client: Minio,
    bucket: str,
    key: str,
    query: dict[str, str],
    ttl: timedelta,
    length: int,
    at: datetime | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """A URL to PUT exactly ``length`` bytes to ``key`` (with ``query``, e.g. a part's), valid for ``ttl``; the request
    must carry ``headers`` too, with these values (they are signed; names in lower case)."""
    expires = int(ttl.total_seconds())
    if not 1 <= expires <= 7 * 24 * 3600:
        raise ValueError("a presigned URL lives 1 second to 7 days")
    creds = client._provider.retrieve() if client._provider else None
    if creds is None:
        raise ValueError("the storage client has no credentials to sign with")
    region = client._get_region(bucket)
    params: dict[str, str | list[str] | tuple[str]] = dict(query)
    if creds.session_token:
        params["X-Amz-Security-Token"] = creds.session_token
    url = client._base_url.build(method="PUT", region=region, bucket_name=bucket, object_name=key, query_params=params)
    date = at or time.utcnow()
    scope = _get_scope(date, region, "s3")
    signed = {"content-length": str(length), "host": url.netloc, **(headers or {})}
    signed_headers = ";".join(sorted(signed))
    signed_query = (
        (url.query + "&" if url.query else "")
        + "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        + f"&X-Amz-Credential={queryencode(creds.access_key + '/' + scope)}"
        + f"&X-Amz-Date={time.to_amz_date(date)}"
        + f"&X-Amz-Expires={expires}"
        + f"&X-Amz-SignedHeaders={queryencode(signed_headers)}"
    )
    canonical_request = "\n".join(
        [
            "PUT",
            url.path or "/",
            _get_canonical_query_string(signed_query),
            "".join(f"{name}:{signed[name]}\n" for name in sorted(signed)),
            signed_headers,
            "UNSIGNED-PAYLOAD",
        ]
    )
    signature = _get_signature(
        _get_signing_key(creds.secret_key, date, region, "s3"),
        _get_string_to_sign(date, scope, sha256_hash(canonical_request)),
    )
    result = SplitResult(url.scheme, url.netloc, url.path, f"{signed_query}&X-Amz-Signature={signature}", url.fragment)
    return urlunsplit(result)
