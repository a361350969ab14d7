"""The interactive API documentation, ``/docs``: Swagger UI served by gridgov itself (``api/static/vendor/
swagger-ui``), so it works offline and under the Content-Security-Policy (:mod:`api.headers`). ReDoc is off.

FastAPI's own page (:func:`fastapi.openapi.docs.get_swagger_ui_html`) is used as it is, pointed at the vendored
files; its one inline script (the call that starts Swagger UI) is allowed by its hash in this response's policy.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from api.headers import content_security_policy, inline_script_hashes
from api.routers.pages import static_path

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} · API",
        swagger_js_url=static_path(request, "vendor/swagger-ui/swagger-ui-bundle.js"),
        swagger_css_url=static_path(request, "vendor/swagger-ui/swagger-ui.css"),
        swagger_favicon_url=static_path(request, "vendor/swagger-ui/favicon-32x32.png"),
        oauth2_redirect_url=None,  # bearer tokens only: no OAuth2 flow, no redirect page
        swagger_ui_parameters={"validatorUrl": None},  # never send the document to swagger.io's validator
    )
    page.headers["Content-Security-Policy"] = content_security_policy(inline_script_hashes(page.body))
    return page
