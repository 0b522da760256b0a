"""`/v1/contacts/imports` and `/v1/contacts/export`: files of contacts in and out.

Registered before the contacts router, so `/v1/contacts/{contact_id}` does not take these paths.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from orchestrator import idempotency
from orchestrator.api.audience_query import AudienceQueryDep
from orchestrator.api.deps import NowDep, ResourcesDep, SessionDep, WorkspaceIdDep, get_api_key
from orchestrator.db import transaction
from orchestrator.errors import OutreachError, UnsupportedMediaType
from orchestrator.exports import export_text
from orchestrator.imports import uploads
from orchestrator.imports.parsing import Format
from orchestrator.imports.runner import ImportRunner
from orchestrator.resources import Resources
from orchestrator.schemas import OutputModel

router = APIRouter(prefix="/v1/contacts", tags=["imports"])

IMPORTS_PATH: Final = "/v1/contacts/imports"
_MEDIA_TYPES: Final[dict[str, Format]] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
}
_EXPORT_MEDIA: Final[dict[Format, str]] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
}
_UPLOAD_DOC: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": (
            "CSV with the header email,name,locale,timezone,tags,consent_source,consent_at,"
            "attr.* (tags separated by ';') or JSON Lines with the same keys (tags as a list, "
            "attributes as an object). UTF-8, with or without BOM."
        ),
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


class ImportPublic(OutputModel):
    id: str
    status: Literal["receiving", "pending", "processing", "completed", "failed"]
    format: Literal["csv", "jsonl"]
    bytes_received: int
    lines: int
    created: int
    updated: int
    unchanged: int
    failed: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def import_runner(request: Request) -> ImportRunner:
    runner: ImportRunner = request.app.state.import_runner
    return runner


async def _uploader_workspace(request: Request, resources: ResourcesDep, now: NowDep) -> str:
    """The API key check in its own short transaction: the upload that follows writes in many
    transactions of its own, which a request-long one would block on SQLite."""
    async with transaction(resources.sessions) as session:
        key = await get_api_key(request, session, now)
    return key.workspace_id


UploaderDep = Annotated[str, Depends(_uploader_workspace)]


def _format_of(request: Request, given: Format | None) -> Format:
    if given is not None:
        return given
    media, _, params = request.headers.get("content-type", "").partition(";")
    chosen = _MEDIA_TYPES.get(media.strip().lower())
    charset = next(
        (
            value.strip().strip('"').lower()
            for name, _, value in (p.partition("=") for p in params.split(";"))
            if name.strip().lower() == "charset"
        ),
        "utf-8",
    )
    if chosen is None or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            "Send text/csv or application/x-ndjson (UTF-8), or name the format with ?format=csv "
            "or ?format=jsonl",
            extra={"accepted": [*_MEDIA_TYPES]},
        )
    return chosen


def _public(view: uploads.ImportView) -> ImportPublic:
    return ImportPublic.model_validate(view, from_attributes=True)


def _accepted(body: str) -> Response:
    import_id = json.loads(body)["id"]
    return Response(
        content=body,
        status_code=202,
        media_type="application/json",
        headers={"Location": f"{IMPORTS_PATH}/{import_id}"},
    )


@router.post(
    "/imports",
    status_code=202,
    response_model=ImportPublic,
    openapi_extra=_UPLOAD_DOC,
    responses={415: {"description": "Not CSV or JSON Lines"}},
)
async def create_import(
    request: Request,
    resources: ResourcesDep,
    workspace_id: UploaderDep,
    runner: Annotated[ImportRunner, Depends(import_runner)],
    file_format: Annotated[Format | None, Query(alias="format")] = None,
) -> Response:
    """Upload a file of contacts; it is stored as it streams in, then processed in the
    background. Poll the Location; `Idempotency-Key` is honoured (the key is checked against a
    hash of the whole body, so a retry uploads the file again and gets the first answer)."""
    chosen = _format_of(request, file_format)
    key = request.headers.get("idempotency-key")
    if key is not None:
        idempotency.check_key(key)
    received = await uploads.receive(
        resources.sessions,
        resources.clock,
        workspace_id=workspace_id,
        file_format=chosen,
        body=request.stream(),
    )
    body, replayed = await _settle(resources, workspace_id, received, key)
    if replayed:
        response = _accepted(body)
        response.headers["idempotent-replayed"] = "true"
        return response
    runner.start(resources, received.import_id)
    return _accepted(body)


async def _settle(
    resources: Resources, workspace_id: str, received: uploads.Received, key: str | None
) -> tuple[str, bool]:
    """Mark the upload received and give the answer; when the Idempotency-Key answered before,
    drop this copy of the file and give the first answer again (`True`: replayed)."""
    now = resources.clock.now()
    try:
        async with transaction(resources.sessions) as session:
            if key is not None:
                stored = await idempotency.claim(
                    session,
                    workspace_id=workspace_id,
                    method="POST",
                    path=IMPORTS_PATH,
                    key=key,
                    request_hash=received.sha256,
                    now=now,
                )
                if stored is not None:
                    await uploads.discard(session, import_id=received.import_id)
                    return stored.body, True
            await uploads.mark_received(session, import_id=received.import_id, now=now)
            view = await uploads.get_import(
                session, workspace_id=workspace_id, import_id=received.import_id
            )
            body = _public(view).model_dump_json()
            if key is not None:
                await idempotency.store(
                    session,
                    workspace_id=workspace_id,
                    method="POST",
                    path=IMPORTS_PATH,
                    key=key,
                    status_code=202,
                    body=body,
                )
            return body, False
    except OutreachError:
        # Another body under this key (422) or its first request still running (409).
        async with transaction(resources.sessions) as session:
            await uploads.discard(session, import_id=received.import_id)
        raise


@router.get("/imports/{import_id}", response_model=ImportPublic)
async def read_import(
    import_id: str, session: SessionDep, workspace_id: WorkspaceIdDep
) -> ImportPublic:
    """Progress and counts: `lines` read so far, `created`, `updated`, `unchanged`, `failed`."""
    return _public(
        await uploads.get_import(session, workspace_id=workspace_id, import_id=import_id)
    )


@router.get(
    "/imports/{import_id}/errors",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON Lines"}},
)
async def import_errors(
    import_id: str, session: SessionDep, resources: ResourcesDep, workspace_id: WorkspaceIdDep
) -> StreamingResponse:
    """The refused rows as JSON Lines `{"line", "field", "message"}`, in line order; `line` is
    the physical line where the row starts (a CSV header is line 1)."""
    await uploads.get_import(session, workspace_id=workspace_id, import_id=import_id)

    async def lines() -> AsyncIterator[str]:
        async for item in uploads.stream_errors(resources.sessions, import_id=import_id):
            yield (
                json.dumps(
                    {"line": item.line, "field": item.field, "message": item.message},
                    ensure_ascii=False,
                )
                + "\n"
            )

    return StreamingResponse(lines(), media_type="application/x-ndjson; charset=utf-8")


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}, "application/x-ndjson": {}},
            "description": "The matching contacts in the import format",
        }
    },
)
async def export_contacts(
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    audience: AudienceQueryDep,
    file_format: Annotated[Format, Query(alias="format")] = "csv",
) -> StreamingResponse:
    """Every matching contact (the filters of `GET /v1/contacts`) in id order, as CSV with the
    import header or as JSON Lines. CSV cells starting with = + - @ tab or CR get a leading `'`
    against spreadsheet formula injection (the import removes it); JSON Lines is unaltered."""
    text = export_text(
        resources.sessions, workspace_id=workspace_id, audience=audience, file_format=file_format
    )
    return StreamingResponse(
        text,
        media_type=_EXPORT_MEDIA[file_format],
        headers={"Content-Disposition": f'attachment; filename="contacts.{file_format}"'},
    )
