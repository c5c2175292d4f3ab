"""Parts of a resumable upload, relayed from the browser to object storage.

``PUT /api/uploads/{model_id}/{upload_id}/parts/{n}``: the console asks the datasets API (with the
caller's token, so its tenant rules apply) for the upload's parts, checks the part's size against the plan,
asks it for a URL for part ``n`` and streams the body there. The browser only ever talks
to the console's origin: no CORS rule on the storage, no storage host in the page's CSP, and it works
behind an Ingress that does not expose the storage. URLs come from the datasets API, never from the
browser, so this cannot be used to reach any other host.

Each part goes to storage with its SHA-256 (``x-amz-checksum-sha256``, base64), which storage verifies on
arrival, refusing the part when the bytes differ. The page computes it in the browser and sends it with the
part, so the bytes are checked from the browser to storage; a page without WebCrypto (plain http on a host
other than localhost) sends none, and the console then reads that part (one part, at most the part size) to
compute it before sending it on. Once storage refuses the header because the URL does not sign it (AWS S3
does; MinIO does not), every later part goes to a URL the datasets API signs for its checksum
(``POST …/uploads/{id}/part-urls``); the refused part is answered "send it again".
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import httpx
from fastapi import Request
from starlette.responses import JSONResponse, Response

from voxtrain_shared.logs import get_logger

from .proxy import body_of, error, forwarded_headers

log = get_logger(__name__)
#: The header a part is sent with (by the page, and on to storage): base64 of the part's SHA-256.
CHECKSUM_HEADER = "x-amz-checksum-sha256"
#: Presigned URLs are used until this long before they expire.
EXPIRY_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    url: str | None  #: None: storage has this part already
    usable_until: float  #: monotonic clock


def _caller(request: Request) -> dict[str, str]:
    """The headers that go with the console's own calls to the datasets API for the caller."""
    return {k: v for k, v in forwarded_headers(request).items() if k.lower() in ("authorization", "x-correlation-id")}


class PartUrls:
    """Presigned part URLs per (caller's token, upload), cached until shortly before they expire."""

    def __init__(self, client: httpx.AsyncClient, datasets_url: str, max_uploads: int = 512) -> None:
        self._client, self._base, self._max = client, datasets_url, max_uploads
        #: storage refused a checksum header its URL does not sign (AWS S3; MinIO verifies it either way): from
        #: then on each part goes to a URL the datasets API signs for its checksum
        self.sign_checksums = False
        self._cache: OrderedDict[tuple[str, str, str], dict[int, Part]] = OrderedDict()

    def _key(self, request: Request, model_id: str, upload_id: str) -> tuple[str, str, str]:
        # Keyed by the token itself: a cached URL is only ever used by the caller it was issued to.
        token = hashlib.sha256(request.headers.get("authorization", "").encode()).hexdigest()
        return token, model_id, upload_id

    async def signed(
        self, request: Request, model_id: str, upload_id: str, number: int, checksum: str
    ) -> str | Response:
        """A URL for part ``number`` that signs its checksum (asked for each part: the checksum is the part's), or
        the datasets API's refusal as a response."""
        body = {"parts": [{"part_number": number, "checksum_sha256": checksum}]}
        r = await self._client.post(
            f"{self._base}/v1/models/{model_id}/uploads/{upload_id}/part-urls", json=body, headers=_caller(request)
        )
        if r.status_code != 200:
            return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"))
        return str(r.json()["part_urls"][0]["url"])

    def forget(self, request: Request, model_id: str, upload_id: str) -> None:
        self._cache.pop(self._key(request, model_id, upload_id), None)

    async def part(self, request: Request, model_id: str, upload_id: str, number: int) -> Part | Response:
        """Part ``number`` of the upload, or the datasets API's refusal as a response."""
        key = self._key(request, model_id, upload_id)
        cached = self._cache.get(key, {}).get(number)
        if cached is not None and cached.url is not None and cached.usable_until > time.monotonic():
            return cached
        r = await self._client.get(f"{self._base}/v1/models/{model_id}/uploads/{upload_id}", headers=_caller(request))
        if r.status_code != 200:
            return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"))
        body = r.json()
        if body.get("state") != "open":
            return error(409, "conflict", f"Upload {upload_id} is {body.get('state')}: no more parts are accepted.")
        now_wall, now_mono = time.time(), time.monotonic()
        parts = {
            p["part_number"]: Part(p["part_number"], p["size"], None, float("inf"))
            for p in body.get("parts_received", [])
        }
        for u in body.get("part_urls", []):
            left = datetime.fromisoformat(u["expires_at"]).timestamp() - now_wall - EXPIRY_MARGIN_SECONDS
            parts[u["part_number"]] = Part(u["part_number"], u["size"], u["url"], now_mono + left)
        self._cache[key] = parts
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        if number not in parts:
            return error(
                422,
                "validation_failed",
                f"Part {number} is not part of upload {upload_id} (it has {body.get('part_count')} parts).",
            )
        return parts[number]


async def put_part(
    client: httpx.AsyncClient, urls: PartUrls, request: Request, model_id: str, upload_id: str, number: int
) -> Response:
    """Stream one part to storage; answers ``{"part_number", "size", "etag"}``."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return error(411, "validation_failed", "A part needs a Content-Length header.")
    found = await urls.part(request, model_id, upload_id, number)
    if isinstance(found, Response):
        return found
    if int(length) != found.size:
        return error(422, "validation_failed", f"Part {number} must be exactly {found.size} bytes (got {length}).")
    if found.url is None:  # storage has it already (a retry after a lost answer)
        return JSONResponse({"part_number": number, "size": found.size, "etag": None, "already_received": True})
    headers = {"content-length": length}
    checksum = request.headers.get(CHECKSUM_HEADER)
    body: AsyncIterator[bytes] | bytes = body_of(request)
    if checksum is None:  # a page without WebCrypto: this part is read here to hash it (its size was checked)
        body = await request.body()
        checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    headers[CHECKSUM_HEADER] = checksum
    url = found.url
    if urls.sign_checksums:
        signed = await urls.signed(request, model_id, upload_id, number, checksum)
        if isinstance(signed, Response):
            return signed
        url = signed
    try:
        r = await client.put(url, content=body, headers=headers)
    except httpx.TransportError as exc:
        log.warning("part_upload_failed", upload_id=upload_id, part=number, error=repr(exc))
        return error(502, "storage_unavailable", f"Part {number} could not be stored; send it again.")
    if r.status_code == 400 and b"XAmzContentChecksumMismatch" in r.content:
        log.warning("part_damaged", upload_id=upload_id, part=number)
        return error(
            502, "storage_unavailable", f"Part {number} arrived damaged (its SHA-256 did not match); send it again."
        )
    if r.status_code == 403 and b"were not signed" in r.content:  # storage wants the checksum signed (AWS S3)
        urls.sign_checksums = True
        return error(502, "storage_unavailable", f"Part {number} was not stored; send it again.")
    if r.status_code // 100 != 2:
        urls.forget(request, model_id, upload_id)  # e.g. an expired URL: fetch fresh ones next time
        log.warning(
            "part_refused_by_storage", upload_id=upload_id, part=number, status=r.status_code, body=r.text[:300]
        )
        return error(
            502, "storage_unavailable", f"Storage refused part {number} (HTTP {r.status_code}); send it again."
        )
    return JSONResponse({"part_number": number, "size": found.size, "etag": r.headers.get("etag", "").strip('"')})
