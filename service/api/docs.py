"""``/docs`` (Swagger UI) and ``/redoc`` from assets shipped in the package: FastAPI's defaults
load them from a CDN, which left both pages blank on the closed networks our users run on."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

VENDOR = "/dashboard/static/vendor"


def install_api_docs(app: FastAPI) -> None:
    """Call on an app made with ``docs_url=None, redoc_url=None``."""

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR}/swagger-favicon-32x32.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{VENDOR}/redoc.standalone.js",
            redoc_favicon_url=f"{VENDOR}/swagger-favicon-32x32.png",
            with_google_fonts=False,
        )
