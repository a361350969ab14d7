"""HTML pages. Each page is a template plus static JavaScript that calls the JSON API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def map_page(request: Request) -> HTMLResponse:
    """The first map page: divisions, grids, buildings, streets, enclosures and checkpoints."""
    return TEMPLATES.TemplateResponse(request, "map.html", {"static": lambda p: request.url_for("static", path=p)})
