"""HTML pages. Each page is a template plus static JavaScript that calls the JSON API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
FAVICON = Path(__file__).resolve().parents[1] / "static" / "favicon.svg"
router = APIRouter(include_in_schema=False)


def static_path(request: Request, path: str) -> str:
    """``/static/<path>``: a path, not an absolute URL, so pages name no host (neither the request's Host header
    nor a configured one) and their scripts are same-origin under the Content-Security-Policy."""
    return request.app.url_path_for("static", path=path)


def _page(request: Request, template: str) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, {"static": lambda p: static_path(request, p)})


@router.get("/", response_class=HTMLResponse)
def map_page(request: Request) -> HTMLResponse:
    """The overview map: divisions, grids, buildings, streets, enclosures and checkpoints."""
    return _page(request, "map.html")


@router.get("/planner", response_class=HTMLResponse)
def planner_page(request: Request) -> HTMLResponse:
    """Planners redraw, split and merge grids with a live validation report (login as planner)."""
    return _page(request, "planner.html")


@router.get("/inspector", response_class=HTMLResponse)
def inspector_page(request: Request) -> HTMLResponse:
    """Inspectors: enclosures, openings by status, checkpoints, households beyond reach, patrol routes, report."""
    return _page(request, "inspector.html")


@router.get("/inspector/report", response_class=HTMLResponse)
def inspector_report_page(request: Request) -> HTMLResponse:
    """The printable coverage report of the inspector page's query (same parameters as
    /api/inspection/coverage/report.html) with a map and a print button; it opens in a tab of its own."""
    return _page(request, "inspector_report.html")


@router.get("/risk-zones/{zone_id}/sheet", response_class=HTMLResponse)
def risk_zone_sheet_page(request: Request, zone_id: int) -> HTMLResponse:
    """The printable zone sheet (区域清单): boundary on a map, level and period, households per grid (and the masked
    list for household roles), checkpoints around it, a print button; data from /api/risk-zones/{zone_id}/sheet."""
    return _page(request, "risk_zone_sheet.html")


@router.get("/screen", response_class=HTMLResponse)
def screen_page(request: Request) -> HTMLResponse:
    """The command centre's wall screen (大屏, 1920×1080): map and live figures per community (?division=code)."""
    return _page(request, "screen.html")


@router.get("/onboarding", response_class=HTMLResponse)
def onboarding_page(request: Request) -> HTMLResponse:
    """A new subdistrict's first steps by upload (divisions, grids), each checked then imported (login as admin)."""
    return _page(request, "onboarding.html")


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request) -> HTMLResponse:
    """Personal access tokens for QGIS and GDAL: make, list and revoke one's own (any logged-in user)."""
    return _page(request, "tokens.html")


@router.get("/team", response_class=HTMLResponse)
def team_page(request: Request) -> HTMLResponse:
    """A grid's team on one page (网格团队): who, contact, what they are assigned; the team checks (grids short of
    workers, without a leader or police, micro-grids without a building head); planners assign and end duties."""
    return _page(request, "grid_team.html")


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """The site icon (an SVG) for clients that ask for ``/favicon.ico`` without reading the pages' ``<link rel=icon>``;
    cached for a day."""
    return FileResponse(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/report", response_class=HTMLResponse)
def report_page(request: Request) -> HTMLResponse:
    """Residents report a problem from their phone, without an account (问题上报); they get a tracking code."""
    return _page(request, "report.html")


@router.get("/report/track", response_class=HTMLResponse)
def track_page(request: Request) -> HTMLResponse:
    """Residents follow a report by its tracking code (进度查询): the steps and their times, no personal data."""
    return _page(request, "track.html")


@router.get("/scorecards", response_class=HTMLResponse)
def scorecards_page(request: Request) -> HTMLResponse:
    """Scorecards (绩效考核): per grid worker and grid of the caller's area over a period, the measures, the shares
    of the workload, difficulty, composite and rank within the community, the definitions, and the exports."""
    return _page(request, "scorecards_page.html")
