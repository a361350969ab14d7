"""Health, vocabularies and the message catalogue (with Chinese and English labels for the field)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import OptionalUser, SessionDep
from api.schemas import HealthPublic
from spatial import messages, vocab
from spatial.store.engine import ping, server_info

router = APIRouter(prefix="/api", tags=["meta · 系统"])


@router.get("/health", response_model=HealthPublic, response_model_exclude_none=True,
            summary="Is the service and its database up (健康检查)",
            openapi_extra={"security": [{}]})  # the token is optional: {} next to the bearer scheme
def health(session: SessionDep, who: OptionalUser) -> HealthPublic:
    """Answers anyone (a load balancer's probe needs no token); the versions only to an admin's token."""
    if who is not None and who.role == "admin":
        return HealthPublic(status="ok", database="reachable", **server_info(session))
    ping(session)
    return HealthPublic(status="ok", database="reachable")


@router.get("/vocab", summary="Controlled vocabularies with zh/en labels (词表)")
def vocabularies() -> dict[str, dict[str, dict[str, str]]]:
    tables = {"roles": vocab.ROLES, "division_levels": vocab.DIVISION_LEVELS, "grid_kinds": vocab.GRID_KINDS,
              "building_uses": vocab.BUILDING_USES, "household_tags": vocab.HOUSEHOLD_TAGS,
              "enclosure_kinds": vocab.ENCLOSURE_KINDS, "checkpoint_kinds": vocab.CHECKPOINT_KINDS,
              "checkpoint_statuses": vocab.CHECKPOINT_STATUSES, "person_relations": vocab.PERSON_RELATIONS,
              "residence_kinds": vocab.RESIDENCE_KINDS, "person_tags": vocab.PERSON_TAGS,
              "move_out_reasons": vocab.MOVE_OUT_REASONS, "team_duties": vocab.TEAM_DUTIES,
              "task_kinds": vocab.TASK_KINDS}
    return {name: {k: {"zh": zh, "en": en} for k, (zh, en) in table.items()} for name, table in tables.items()}


@router.get("/messages", summary="The message catalogue: error and report codes in Chinese and English (提示信息)",
            description="Every error body carries a `code`; its text here, with `{placeholders}` filled from the "
                        "fields of the same body, is what the pages show (Chinese first). Kinds such as "
                        "`InvalidInput` are the fallback for errors without a code of their own and show the "
                        "English `detail`.")
def message_catalogue() -> dict[str, dict[str, str]]:
    return {code: {"zh": zh, "en": en} for code, (zh, en) in messages.MESSAGES.items()}
