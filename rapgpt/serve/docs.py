"""The interactive API docs at `/docs`: Swagger UI from files shipped inside the package, never from a CDN.

FastAPI's own `/docs` page loads Swagger UI from a CDN, so it is blank on a machine without internet. The front
end's build (`npm run build` in web/) copies Swagger UI's script, style sheet and licence from the swagger-ui-dist
npm package into `static/swagger-ui/`; this module serves them and a page that loads them from there. The page
turns off Swagger UI's online spec validator, its only other request to the outside.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)

DOCS_PATH = "/docs"
# The folder of the built front end that web/vite.config.ts copies Swagger UI into, served at the same path.
SWAGGER_DIR = "swagger-ui"
SWAGGER_JS, SWAGGER_CSS, SWAGGER_ICON = "swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"


def add_docs(app: FastAPI, static_dir: Path | None) -> bool:
    """Serve the API docs at `/docs` (and send `/redoc`, FastAPI's other docs page, there) if `static_dir` holds
    Swagger UI; return whether it does. Create `app` with `docs_url=None, redoc_url=None`."""
    assets = static_dir / SWAGGER_DIR if static_dir is not None else None
    if assets is None or not all((assets / name).is_file() for name in (SWAGGER_JS, SWAGGER_CSS, SWAGGER_ICON)):
        log.warning("no Swagger UI in %s: run `npm run build` in web/ to serve the API docs at %s", assets, DOCS_PATH)
        return False
    app.mount(f"/{SWAGGER_DIR}", StaticFiles(directory=assets), name="API docs assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy that serves the app under a prefix
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} API",
            swagger_js_url=f"{root}/{SWAGGER_DIR}/{SWAGGER_JS}",
            swagger_css_url=f"{root}/{SWAGGER_DIR}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}/{SWAGGER_DIR}/{SWAGGER_ICON}",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> RedirectResponse:
        return RedirectResponse(request.scope.get("root_path", "").rstrip("/") + DOCS_PATH)

    return True
