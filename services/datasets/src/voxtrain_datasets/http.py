"""HTTP API of the datasets service (thin: translate, delegate to handlers, render)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import ClientDisconnect

from voxtrain_shared.auth import CurrentPrincipal
from voxtrain_shared.errors import ApiError
from voxtrain_shared.http import correlation_id
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ErrorCode

from . import domain as d
from .formdata import FormError, read_form
from .handlers import Deps, deletes, reads, sessions, uploads
from .storage import ReceivedPart, StorageUnavailable

#: After refusing an upload early, read at most this much more of the body so the client gets the
#: answer instead of a connection reset; beyond it the connection is closed.
DRAIN_BYTES = 32 * 1024 * 1024
DRAIN_SECONDS = 5.0
_STATUS_OF = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FILE_TOO_LARGE: 413,
    ErrorCode.MODEL_LOCKED: 409,
    ErrorCode.INVALID_STATUS: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.STORAGE_UNAVAILABLE: 503,
    ErrorCode.TOO_MANY_UPLOADS: 429,
    ErrorCode.SERVER_BUSY: 503,
}
#: A tenant at its upload cap (or a replica whose upload memory stays full) says to come back after about this long.
RETRY_AFTER_UPLOADS = "30"
_BUSY = "too_many_uploads: the tenant has its limit of uploads in progress or open upload sessions"
TYPE_HELP = "auto (default: detect by extension), TRANSCRIPT, TEST, AUDIO, MANIFEST, or 1-4"


def api_error(exc: d.Rejected) -> ApiError:
    return ApiError(_STATUS_OF.get(exc.code, 422), exc.code, exc.message, exc.details)


def install_errors(app: FastAPI) -> None:
    """Render refusals, malformed forms and storage outages as the shared error body."""

    async def rejected(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, d.Rejected)  # registered for Rejected only
        err = api_error(exc)
        busy = exc.code in (ErrorCode.TOO_MANY_UPLOADS, ErrorCode.SERVER_BUSY)
        headers = {"Retry-After": RETRY_AFTER_UPLOADS} if busy else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    async def bad_form(_r: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(ApiError(422, ErrorCode.VALIDATION_FAILED, str(exc)).body(), status_code=422)

    async def storage(_r: Request, exc: Exception) -> JSONResponse:
        err = ApiError(
            503,
            ErrorCode.STORAGE_UNAVAILABLE,
            "Object storage is unavailable; nothing from this request was kept. Try again later.",
            {"reason": str(exc)[:300]},
        )
        return JSONResponse(err.body(), status_code=503, headers={"Retry-After": "30"})

    async def gone(_r: Request, _exc: Exception) -> Response:
        return Response(status_code=400)  # the client left mid-upload; nothing of it was kept

    app.add_exception_handler(d.Rejected, rejected)
    app.add_exception_handler(ClientDisconnect, gone)
    app.add_exception_handler(FormError, bad_form)
    app.add_exception_handler(StorageUnavailable, storage)


class RequestBody:
    """The request body as it arrives (ASGI ``receive``), remembering whether the client finished."""

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            self.complete = not message.get("more_body", False)
            if message.get("body"):
                yield message["body"]

    async def drain(self) -> None:
        """Drop what the client is still sending (bounded), so it reads our answer, not a reset."""
        dropped = 0
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                async for chunk in self.chunks():
                    dropped += len(chunk)
                    if dropped > DRAIN_BYTES:
                        return
        except (TimeoutError, ClientDisconnect):
            return


# ---------------------------------------------------------------- views


class ValidationView(BaseModel):
    model_config = ConfigDict(extra="allow")
    result: str
    validated_at: str | None = None


class DatasetView(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    type: str = Field(description="TRANSCRIPT, TEST, AUDIO or MANIFEST")
    type_code: int = Field(description="the spec's number: 1-4")
    file_name: str = Field(description="display name: sanitised, never used in storage keys")
    original_name: str = Field(description="the name as sent, control and invisible characters escaped")
    size: int
    sha256: str = Field(
        description="the file's SHA-256 (hex). form: computed by this API from the bytes it stored. direct: as the "
        "uploader computed it and gave it at completion — storage verified every part's bytes on arrival against "
        "the part's SHA-256 the uploader sent with it; when the uploader gave none, computed by this API from the "
        "stored object"
    )
    content_type: str
    source: str = Field(description="form (streamed through this API) or direct (resumable upload)")
    status: str = Field(description="uploaded → validating → valid | invalid")
    validation: dict[str, Any] | None = Field(None, description="the validator's verdict and details")
    created_at: datetime | None
    updated_at: datetime | None


class ModelRef(BaseModel):
    id: uuid.UUID
    status: int
    status_name: str
    accepts_datasets: bool = Field(description="False while 2/3 (model_locked) and at 4 (final)")


class DatasetList(BaseModel):
    model: ModelRef
    datasets: list[DatasetView]


class Uploaded(BaseModel):
    datasets: list[DatasetView]


class Download(BaseModel):
    url: str
    expires_at: datetime
    file_name: str


class StartUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file_name: str = Field(min_length=1, max_length=4096)
    size: int = Field(gt=0, description="exact size in bytes")
    type: str | int = Field("auto", description=TYPE_HELP)
    checksum_algorithm: d.ChecksumAlgorithm = Field(
        d.ChecksumAlgorithm.SHA256,
        description="the checksum every part is sent with (storage verifies it on arrival): SHA256 (default) or "
        "CRC32C (hardware-accelerated, far less CPU per byte). The dataset's sha256 is the whole file's either way",
    )


class PartChecksum(BaseModel):
    """A part's checksum: of the upload's algorithm (exactly one of the two)."""

    model_config = ConfigDict(extra="forbid")
    part_number: int = Field(ge=1, le=d.MAX_PARTS)
    checksum_sha256: str | None = Field(
        None, pattern=r"^[A-Za-z0-9+/]{43}=$", description="base64 of the part's SHA-256 (a SHA256 upload)"
    )
    checksum_crc32c: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9+/]{6}==$",
        description="base64 of the part's CRC32C, 4 bytes big-endian (a CRC32C upload)",
    )

    @model_validator(mode="after")
    def _one(self) -> PartChecksum:
        if (self.checksum_sha256 is None) == (self.checksum_crc32c is None):
            raise ValueError("give exactly one of checksum_sha256 and checksum_crc32c: the upload's algorithm")
        return self

    @property
    def algorithm(self) -> d.ChecksumAlgorithm:
        return d.ChecksumAlgorithm.SHA256 if self.checksum_sha256 is not None else d.ChecksumAlgorithm.CRC32C

    @property
    def value(self) -> str:
        return self.checksum_sha256 or self.checksum_crc32c or ""


def reported(parts: list[PartChecksum]) -> tuple[dict[int, str], d.ChecksumAlgorithm | None]:
    """The part checksums a request gives, and their one algorithm (None: none given)."""
    return {p.part_number: p.value for p in parts}, d.reported_algorithm({p.algorithm for p in parts})


class SignParts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parts: list[PartChecksum] = Field(min_length=1, max_length=100, description="1-100 parts and their checksums")


class SignedPartUrls(BaseModel):
    checksum_header: str = Field(description="the header each part is sent with: x-amz-checksum-sha256 or -crc32c")
    part_urls: list[PartUrlView] = Field(
        description="presigned PUT URLs that sign each part's length and checksum header: send the part with "
        "exactly that header value; storage refuses it without, with another value, or when the bytes differ"
    )


class CompleteUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="the whole file's SHA-256 as the uploader computed it while sending (recorded as the dataset's "
        "sha256; the object is not read back). Without it, this API reads the stored object once to compute it",
    )
    parts: list[PartChecksum] = Field(
        default_factory=list,
        max_length=d.MAX_PARTS,
        description="optional: the checksums (of the upload's algorithm) of parts as the uploader sent them; refused "
        "(part_checksum_mismatch) unless each is the one storage verified on arrival",
    )

    def completion(self, upload_id: uuid.UUID) -> d.Completion:
        checksums, algorithm = reported(self.parts)
        return d.Completion(upload_id, self.sha256, checksums, algorithm)


class CompleteItem(CompleteUpload):
    id: uuid.UUID


class CompleteMany(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uploads: list[CompleteItem] = Field(min_length=1, description="1-10 open upload sessions of this model")


class PartView(BaseModel):
    part_number: int
    size: int
    etag: str | None = None
    checksum_sha256: str | None = Field(
        None,
        description="of a SHA256 upload: the base64 SHA-256 storage verified on arrival; a part without one is "
        "listed as missing",
    )
    checksum_crc32c: str | None = Field(
        None,
        description="of a CRC32C upload: the base64 CRC32C storage verified on arrival; a part without one is "
        "listed as missing",
    )


class PartUrlView(BaseModel):
    part_number: int
    size: int
    url: str
    expires_at: datetime


class UploadView(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    dataset_id: uuid.UUID
    type: str
    type_code: int
    file_name: str
    size: int
    part_size: int
    part_count: int
    state: str = Field(description="open, completing or completed")
    created_at: datetime
    expires_at: datetime
    checksum_algorithm: d.ChecksumAlgorithm = Field(description="what every part carries: SHA256 or CRC32C")
    checksum_header: str = Field(
        description="the header to send each part with: x-amz-checksum-sha256 or x-amz-checksum-crc32c"
    )
    parts_received: list[PartView]
    missing_parts: list[int]
    part_urls: list[PartUrlView] = Field(
        description="presigned PUT URLs for the missing parts, signing their length. Send each part with its exact "
        "size and the header checksum_header: base64 of the part's checksum (SHA-256, or CRC32C as 4 big-endian "
        "bytes); storage refuses a part without it, or whose bytes do not match it. MinIO takes the header unsigned; "
        "for stores that refuse unsigned x-amz-* headers (AWS S3) get a URL that signs it: "
        "POST .../uploads/{id}/part-urls"
    )
    dataset: DatasetView | None = None


class UploadLimits(BaseModel):
    max_files: int = Field(description="files per upload")
    max_file_bytes: int = Field(description="bytes per file")


class Completed(BaseModel):
    dataset: DatasetView


def view(ds: d.Dataset) -> DatasetView:
    return DatasetView(
        id=ds.id,
        model_id=ds.model_id,
        type=ds.type.name,
        type_code=ds.type.value,
        file_name=ds.file_name,
        original_name=ds.original_name,
        size=ds.size,
        sha256=ds.sha256,
        content_type=ds.content_type,
        source=ds.source,
        status=ds.status.value,
        validation=ds.validation,
        created_at=ds.created_at,
        updated_at=ds.updated_at,
    )


def url_view(u: sessions.PartUrl) -> PartUrlView:
    return PartUrlView(part_number=u.number, size=u.size, url=u.url, expires_at=u.expires_at)


def part_view(p: ReceivedPart, algorithm: d.ChecksumAlgorithm) -> PartView:
    sha = algorithm is d.ChecksumAlgorithm.SHA256
    return PartView(
        part_number=p.number,
        size=p.size,
        etag=p.etag,
        checksum_sha256=p.checksum if sha else None,
        checksum_crc32c=None if sha else p.checksum,
    )


def upload_view(st: sessions.SessionState) -> UploadView:
    s = st.session
    return UploadView(
        id=s.id,
        model_id=s.model_id,
        dataset_id=s.dataset_id,
        type=s.type.name,
        type_code=s.type.value,
        file_name=s.file_name,
        size=s.size,
        part_size=s.part_size,
        part_count=s.part_count,
        state=s.state,
        created_at=s.created_at,
        expires_at=s.expires_at,
        checksum_algorithm=s.checksum_algorithm,
        checksum_header=s.checksum_algorithm.header,
        parts_received=[part_view(p, s.checksum_algorithm) for p in st.received],
        missing_parts=st.missing,
        part_urls=[url_view(u) for u in st.urls],
        dataset=view(st.dataset) if st.dataset else None,
    )


_MULTIPART_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "type": {
                            "type": "string",
                            "default": "auto",
                            "description": TYPE_HELP + "; must come before the files",
                        },
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                            "maxItems": 10,
                        },
                    },
                }
            }
        },
    }
}


def router(deps: Deps) -> APIRouter:
    r = APIRouter(prefix="/v1/models/{model_id}", tags=["datasets"])

    def ctx(principal: Any, request: Request) -> Context:
        return Context(principal.tenant_id, correlation_id(request))

    @r.post(
        "/datasets",
        status_code=status.HTTP_201_CREATED,
        response_model=Uploaded,
        openapi_extra=_MULTIPART_DOC,
        responses={
            429: {"description": _BUSY},
            503: {"description": "server_busy: the upload memory stayed full (Retry-After); or storage_unavailable"},
        },
    )
    async def upload(
        model_id: uuid.UUID,
        request: Request,
        principal: CurrentPrincipal,
        type_: Annotated[str | None, Query(alias="type", description=TYPE_HELP)] = None,
    ) -> Uploaded:
        """Upload 1-10 files (multipart/form-data), each becoming one dataset.

        Files stream to storage as they arrive (never held in memory); each is checked when its part
        starts (count, extension against the type) and while it streams (size). Any refusal rejects
        the whole request and keeps nothing. The type comes from ``?type=`` or a ``type`` form field
        sent before the files.
        """
        body = RequestBody(request)
        form = read_form(request.headers.get("content-type"), body.chunks())
        try:
            datasets = await uploads.upload_form(deps, ctx(principal, request), model_id, type_, form)
        except (d.Rejected, FormError):
            await body.drain()
            raise
        return Uploaded(datasets=[view(x) for x in datasets])

    @r.get("/datasets", response_model=DatasetList)
    async def list_(model_id: uuid.UUID, principal: CurrentPrincipal) -> DatasetList:
        """The model's datasets, oldest first, with validation status and details."""
        st, items = await reads.list_datasets(deps, principal.tenant_id, model_id)
        return DatasetList(
            model=ModelRef(
                id=model_id,
                status=st.value,
                status_name=st.name,
                accepts_datasets=st.accepts_datasets,
            ),
            datasets=[view(x) for x in items],
        )

    @r.get("/datasets/{dataset_id}", response_model=DatasetView)
    async def get(model_id: uuid.UUID, dataset_id: uuid.UUID, principal: CurrentPrincipal) -> DatasetView:
        return view(await reads.get_dataset(deps, principal.tenant_id, model_id, dataset_id))

    @r.get("/datasets/{dataset_id}/download", response_model=Download)
    async def download(model_id: uuid.UUID, dataset_id: uuid.UUID, principal: CurrentPrincipal) -> Download:
        """A short-lived presigned URL to GET the dataset's bytes straight from storage."""
        ds, url, expires = await reads.download_url(deps, principal.tenant_id, model_id, dataset_id)
        return Download(url=url, expires_at=expires, file_name=ds.file_name)

    @r.delete("/datasets/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete(
        model_id: uuid.UUID, dataset_id: uuid.UUID, principal: CurrentPrincipal, request: Request
    ) -> Response:
        """Delete a dataset and its object; refused while the model is 2 or 3 (and at 4)."""
        await deletes.delete_dataset(deps, ctx(principal, request), model_id, dataset_id)
        return Response(status_code=204)

    @r.post(
        "/uploads",
        status_code=status.HTTP_201_CREATED,
        response_model=UploadView,
        responses={429: {"description": _BUSY}},
    )
    async def start_upload(
        model_id: uuid.UUID, body: StartUpload, principal: CurrentPrincipal, request: Request
    ) -> UploadView:
        """Open a resumable upload: PUT each part to its presigned URL, then complete."""
        st = await sessions.start_direct_upload(
            deps, ctx(principal, request), model_id, body.file_name, body.size, str(body.type), body.checksum_algorithm
        )
        return upload_view(st)

    @r.get("/uploads/{upload_id}", response_model=UploadView)
    async def get_upload(model_id: uuid.UUID, upload_id: uuid.UUID, principal: CurrentPrincipal) -> UploadView:
        """Parts received so far, the missing ones, and fresh URLs for them (to resume)."""
        return upload_view(await sessions.get_direct_upload(deps, principal.tenant_id, model_id, upload_id))

    @r.post("/uploads/{upload_id}/part-urls", response_model=SignedPartUrls)
    async def sign_parts(
        model_id: uuid.UUID, upload_id: uuid.UUID, body: SignParts, principal: CurrentPrincipal
    ) -> SignedPartUrls:
        """URLs for parts that sign each part's checksum as you computed it (works with every S3 store)."""
        checksums, algorithm = reported(body.parts)
        s, urls = await sessions.sign_parts(deps, principal.tenant_id, model_id, upload_id, checksums, algorithm)
        return SignedPartUrls(checksum_header=s.checksum_algorithm.header, part_urls=[url_view(u) for u in urls])

    @r.post(
        "/uploads/complete",
        response_model=Uploaded,
        status_code=status.HTTP_201_CREATED,
        responses={200: {"model": Uploaded, "description": "all of them were completed earlier"}},
    )
    async def complete_uploads(
        model_id: uuid.UUID, body: CompleteMany, principal: CurrentPrincipal, request: Request, response: Response
    ) -> Uploaded:
        """Complete several upload sessions as one upload (one batch: training waits for all of them)."""
        saved, created = await sessions.complete_direct_uploads(
            deps, ctx(principal, request), model_id, [u.completion(u.id) for u in body.uploads]
        )
        if not created:
            response.status_code = status.HTTP_200_OK
        return Uploaded(datasets=[view(x) for x in saved])

    @r.post(
        "/uploads/{upload_id}/complete",
        response_model=Completed,
        status_code=status.HTTP_201_CREATED,
        responses={200: {"model": Completed, "description": "already completed earlier"}},
    )
    async def complete_upload(
        model_id: uuid.UUID,
        upload_id: uuid.UUID,
        principal: CurrentPrincipal,
        request: Request,
        response: Response,
        body: Annotated[CompleteUpload | None, Body()] = None,
    ) -> Completed:
        """Check every part and its storage-verified checksum, assemble the object, create the dataset (idempotent)."""
        ds, created = await sessions.complete_direct_upload(
            deps, ctx(principal, request), model_id, (body or CompleteUpload()).completion(upload_id)
        )
        if not created:
            response.status_code = status.HTTP_200_OK
        return Completed(dataset=view(ds))

    @r.delete("/uploads/{upload_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def cancel_upload(
        model_id: uuid.UUID, upload_id: uuid.UUID, principal: CurrentPrincipal, request: Request
    ) -> Response:
        """Abort a resumable upload and discard its parts."""
        await sessions.cancel_direct_upload(deps, ctx(principal, request), model_id, upload_id)
        return Response(status_code=204)

    outer = APIRouter()
    outer.include_router(r)
    limits = UploadLimits(max_files=deps.limits.max_files, max_file_bytes=deps.limits.max_file_bytes)

    @outer.get("/v1/upload-limits", response_model=UploadLimits, tags=["datasets"])
    async def upload_limits() -> UploadLimits:
        """The limits every upload is held to, for clients to check before sending (public: no token needed)."""
        return limits

    return outer
