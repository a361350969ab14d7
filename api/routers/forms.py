"""Department forms (表格抗疫): saved extraction templates over the population ledger, filled as XLSX or CSV.

Anyone logged in lists the templates and the catalogues they are built from; running one needs a role that reads
household data (grid workers get their grids only; progress forms follow the caller's area); full personal values
need an admin, logged in (not an access token), and a reason. Admins add and replace templates: a definition names
columns, filters and a grouping from the catalogues (``GET /api/forms/catalogue``) and is refused (422) with every
problem named otherwise. The SQL is in :mod:`spatial.store.forms`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from api.downloads import attachment, scratch
from api.deps import CurrentUser, ReaderUser, SessionDep, SettingsDep
from api.types import Id, Name, OneOf
from spatial.io.forms import MEDIA_TYPES, write_form
from spatial.personal_keys import personal_keys
from spatial.store import forms, tokens

router = APIRouter(prefix="/api/forms", tags=["forms · 表格"])

NAME = "^" + forms.NAME.pattern + "$"
NamePath = Annotated[str, Field(pattern=NAME, description="a template's name (a–z, 0–9, _)")]


ALL_COLUMNS = sorted({c for columns in forms.COLUMNS.values() for c in columns})
ALL_FILTERS = sorted({f for filters in forms.FILTERS.values() for f in filters})
ALL_GROUPINGS = sorted({g for groupings in forms.GROUPINGS.values() for g in groupings})


class FilterIn(BaseModel):
    filter: OneOf(ALL_FILTERS) = Field(description="a filter of the source's catalogue (GET /api/forms/catalogue)")
    value: Any = Field(default=None, description="its value: a tag, a population type, a date, a number …")


class TemplateDefinition(BaseModel):
    """What a template says; column, filter and grouping names come from the catalogues of its source."""

    title: Name = Field(examples=["独居老人花名册"])
    department: str | None = Field(default=None, max_length=100, examples=["民政"])
    description: str | None = Field(default=None, max_length=1000)
    source: OneOf(forms.SOURCES)
    group_by: OneOf(ALL_GROUPINGS) = Field(default="grid", description="building: not for campaign_progress")
    columns: list[OneOf(ALL_COLUMNS)] = Field(min_length=1, json_schema_extra={"uniqueItems": True},
                                              description="column names of the source's catalogue, in order, "
                                                          "each once")
    filters: list[FilterIn] = Field(default_factory=list)
    masking: OneOf(forms.MASKINGS) = Field(default="masked", description="'unmasked' forms need an admin and a "
                                                                         "reason at every run")


class TemplateCreate(TemplateDefinition):
    name: str = Field(pattern=NAME, description="2–40 characters a–z, 0–9, _; a letter first")


class TemplatePublic(TemplateDefinition):
    name: str
    builtin: bool


def _public(t: forms.Template) -> TemplatePublic:
    return TemplatePublic(name=t.name, builtin=t.builtin, **t.definition())


def _definition(body: TemplateDefinition) -> dict[str, Any]:
    return body.model_dump(exclude={"name"}, exclude_none=True)


@router.get("", summary="The form templates (表格模板)")
def list_forms(session: SessionDep, who: CurrentUser) -> list[TemplatePublic]:
    return [_public(t) for t in forms.list_templates(session)]


@router.get("/catalogue", summary="What a template may name: columns (Chinese header, personal or not), filters, "
                                  "grouping levels, per source")
def form_catalogue(who: CurrentUser) -> dict[str, Any]:
    return forms.catalogue()


@router.get("/{name}", summary="One form template")
def get_form(name: NamePath, session: SessionDep, who: CurrentUser) -> TemplatePublic:
    return _public(forms.get_template(session, name))


@router.post("", status_code=201, summary="Add a form template (admins)")
def add_form(body: TemplateCreate, session: SessionDep, who: CurrentUser) -> TemplatePublic:
    saved = forms.save_template(session, who, body.name, _definition(body), create=True)
    return _public(saved)


@router.put("/{name}", summary="Replace a form template (admins)")
def replace_form(name: NamePath, body: TemplateDefinition, session: SessionDep, who: CurrentUser) -> TemplatePublic:
    return _public(forms.save_template(session, who, name, _definition(body), create=False))


@router.get("/{name}/run", response_class=FileResponse,
            summary="Fill a form for a division or grid and download it (XLSX or CSV, UTF-8 with BOM)",
            description="Rows in the caller's household scope (progress: area) within `division`; personal columns "
                        "masked unless `reveal` (an admin, logged in, with a `reason`; at most "
                        "`reveal_exports_max_per_hour` an hour). Every run is audited.")
def run_form(name: NamePath, session: SessionDep, settings: SettingsDep, who: ReaderUser,
             division: Annotated[str, Query(pattern=r"^(\d{12}|\d{14})$",
                                            description="12-digit division code or 14-digit grid code")],
             format: Literal["xlsx", "csv"] = "xlsx",
             campaign: Annotated[Id | None, Query(description="progress forms: default the newest open")] = None,
             reveal: bool = False,
             reason: Annotated[str | None, Query(max_length=500, description="why (needed with reveal)")] = None,
             ) -> FileResponse:
    if reveal:
        tokens.refuse_token(who, "revealing personal data")
    result = forms.run_form(session, who, forms.get_template(session, name), division, reveal=reveal, reason=reason,
                            campaign_id=campaign, per_hour=settings.reveal_exports_max_per_hour,
                            keys=lambda: personal_keys(settings))
    with scratch("gridgov-form-") as folder:
        path = write_form(result, folder / f"{name}-{division}.{format}", format)
        return attachment(folder, path, MEDIA_TYPES[format])
