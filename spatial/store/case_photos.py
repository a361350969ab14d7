"""Photos of cases (事件照片): the reporter's on report, the handler's on the way (before/after), in the database.

Every photo passes :func:`spatial.io.photos.clean_photo` first (type by content, size and pixel caps, metadata
stripped by re-encoding) and is stored as its JPEG bytes in ``case_photos`` (decision 0017: in the case's own
transaction, so a refused photo or a failed report leaves nothing behind; in every backup with its case; read
through the same scope as the case). A case holds at most :data:`MAX_PER_CASE` photos.

Who adds photos:

* the resident, by tracking code (:func:`add_by_code`), while the report is still ``reported`` and within
  :data:`RESIDENT_WINDOW` of reporting it (the report page sends them right after the report);
* staff (:func:`add_photo`): whoever sees the case and is its reporter, assignee (or department), or a grid
  worker, planner, inspector or admin of its area — not viewers, auditors. Their photos get a ``public_key``:
  Open311 publishes them as ``media_url`` (:func:`public_media`); a resident's photo never is.

Who reads them: whoever sees the case (:func:`spatial.store.cases.get_case`); a staff read of a resident's photo
(it may show their home, their face) is audited (``case_photo.read``). The resident reads the photos of their
own case by tracking code (:func:`photo_by_code`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, NotFound
from spatial.io.photos import clean_photo
from spatial.store import audit
from spatial.store import cases as case_store

MAX_PER_CASE = 9
RESIDENT_WINDOW = timedelta(hours=1)
STAFF_ROLES = ("grid_worker", "planner", "inspector", "department")


@dataclass(frozen=True)
class PhotoInfo:
    """A stored photo without its bytes: ``stage`` the case state when added, ``by`` ``resident`` or a user
    name, ``public`` whether Open311 publishes it."""

    id: int
    case_id: int
    stage: str
    by: str
    at: datetime
    width: int
    height: int
    size: int
    public: bool


@dataclass(frozen=True)
class Photo:
    info: PhotoInfo
    data: bytes
    media_type: str = "image/jpeg"


_INFO = "p.id, p.case_id, p.stage, p.uploaded_by, p.uploaded_at, p.width, p.height, length(p.bytes) AS size, p.public_key"


def _info(row: Any) -> PhotoInfo:
    return PhotoInfo(row.id, row.case_id, row.stage, row.uploaded_by, row.uploaded_at, row.width, row.height, row.size,
                     row.public_key is not None)


def _store(session: Session, case_id: int, state: str, by: str, data: bytes, *, public: bool) -> PhotoInfo:
    """Check, clean and insert one photo of a locked case (Conflict past :data:`MAX_PER_CASE`)."""
    count = session.execute(text("SELECT count(*) FROM case_photos WHERE case_id = :id"), {"id": case_id}).scalar_one()
    if count >= MAX_PER_CASE:
        raise Conflict(f"a case holds at most {MAX_PER_CASE} photos; this one has them", code="case.photo_count",
                       max_photos=MAX_PER_CASE)
    clean = clean_photo(data)
    row = session.execute(text(f"""
        INSERT INTO case_photos AS p (case_id, stage, uploaded_by, width, height, bytes, sha256, public_key)
        VALUES (:case, :stage, :by, :w, :h, :data, :sha, :key) RETURNING {_INFO}"""),
        {"case": case_id, "stage": state, "by": by, "w": clean.width, "h": clean.height, "data": clean.data,
         "sha": clean.sha256, "key": secrets.token_urlsafe(12) if public else None}).one()
    return _info(row)


def add_by_code(session: Session, tracking_code: str, data: bytes, *, now: datetime | None = None) -> PhotoInfo:
    """The resident adds a photo to the report of ``tracking_code`` (module docstring). NotFound for an unknown
    code or a staff report; Conflict once the report is registered or older than :data:`RESIDENT_WINDOW`."""
    row = case_store.by_code(session, tracking_code, lock=True)
    if row.reporter_user is not None:
        raise NotFound(case_store.NO_SUCH_CODE, code="case.tracking_code")
    now = case_store.now_or(now)
    if row.state != "reported" or now - row.reported_at > RESIDENT_WINDOW:
        raise Conflict("photos are added with the report, within an hour and before it is registered; call the "
                       "community office to add more", code="case.photo_late")
    return _store(session, row.id, row.state, "resident", data, public=False)


def add_photo(session: Session, who: Principal, case_id: int, data: bytes) -> PhotoInfo:
    """Staff add a photo to a visible case (module docstring for who may); Forbidden for viewers and auditors,
    Conflict on a finished case."""
    row = case_store.locked_case(session, who, case_id)
    if who.role != "admin" and who.role not in STAFF_ROLES:
        raise Forbidden(f"{who.role}s add no photos to cases", code="case.photo_role", role=who.role)
    if row.state in ("closed", "rejected", "merged"):
        raise Conflict(f"case {case_id} is finished ({row.state}): reopen it to add photos", code="case.photo_finished",
                       state=row.state)
    return _store(session, row.id, row.state, who.username, data, public=True)


def photos_of(session: Session, who: Principal, case_id: int) -> list[PhotoInfo]:
    """The photos of a visible case (OutOfScope otherwise), oldest first, without their bytes."""
    case_store.get_case(session, who, case_id)
    rows = session.execute(text(f"SELECT {_INFO} FROM case_photos p WHERE p.case_id = :id ORDER BY p.id"),
                           {"id": case_id}).all()
    return [_info(r) for r in rows]


def _photo(session: Session, photo_id: int, case_ids: list[int]) -> Photo:
    row = session.execute(text(f"SELECT {_INFO}, p.bytes, p.media_type FROM case_photos p "
                               "WHERE p.id = :id AND p.case_id = ANY(:cases)"),
                          {"id": photo_id, "cases": case_ids}).one_or_none()
    if row is None:
        raise NotFound(f"case photo {photo_id} does not exist here", code="case.photo_missing", photo=photo_id)
    return Photo(_info(row), bytes(row.bytes), row.media_type)


def get_photo(session: Session, who: Principal, case_id: int, photo_id: int) -> Photo:
    """One photo of a visible case; a resident's photo read by staff is audited (``case_photo.read``)."""
    case_store.get_case(session, who, case_id)
    photo = _photo(session, photo_id, [case_id])
    if photo.info.by == "resident":
        audit.record(session, who, "case_photo.read", object_type="case_photo", object_id=str(photo_id),
                     purpose=f"case {case_id}", result="resident's photo shown")
    return photo


def photo_by_code(session: Session, tracking_code: str, photo_id: int) -> Photo:
    """A photo of the resident's own case (or of the case it was merged into), by tracking code."""
    row = case_store.by_code(session, tracking_code)
    return _photo(session, photo_id, [row.id] + ([row.duplicate_of] if row.duplicate_of else []))


def public_media(session: Session, key: str) -> Photo:
    """A published (staff) photo by its ``public_key``: Open311 ``media_url``. NotFound otherwise."""
    row = session.execute(text(f"SELECT {_INFO}, p.bytes, p.media_type FROM case_photos p WHERE p.public_key = :key"),
                          {"key": key}).one_or_none()
    if row is None:
        raise NotFound("no published photo has this address", code="case.photo_missing", photo=key[:20])
    return Photo(_info(row), bytes(row.bytes), row.media_type)

