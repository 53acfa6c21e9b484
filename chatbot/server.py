"""What ``chatbot serve`` runs: one ASGI app on one port, served by uvicorn, with the OpenAI-
compatible API (``/v1``, :mod:`chatbot.api`), the compact chat for embedding (``/embed``) and
the web chat (``/``), both behind the optional login; every response says who may frame it
(``Content-Security-Policy: frame-ancestors``)."""

from __future__ import annotations

from typing import Any

import gradio as gr
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.access import Access, Guard, frame_ancestors
from chatbot.api import error_shape, router
from chatbot.app import CSS, EMBED_CSS, HEAD, build_app, queued
from chatbot.service import ChatService


class FramePolicy:
    """ASGI middleware: ``Content-Security-Policy: frame-ancestors`` on every response (the
    chat's own pages and Gradio's), so that only the allowed origins may put it in a frame."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.policy = policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-frame-options"]
                message["headers"] = [*headers, (b"content-security-policy", self.policy)]
            await send(message)

        await self.app(scope, receive, with_policy)


def build_server(service: ChatService, access: Access) -> FastAPI:
    """The one app: API, embeddable chat, chat. ``service`` gets the access's limits."""
    service.guard = service.guard or Guard(access)
    app = FastAPI(title="chatbot", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router(service, service.guard))

    @app.exception_handler(HTTPException)
    async def openai_shaped(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/v1"):
            return error_shape(exc.status_code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/embed", include_in_schema=False)
    async def embed() -> RedirectResponse:
        return RedirectResponse("/embed/")

    auth: Any = list(access.logins) or None
    common: dict[str, Any] = {"auth": auth, "footer_links": [], "head": HEAD, "ssr_mode": False}
    app = gr.mount_gradio_app(app, queued(build_app(service, compact=True), service), "/embed",
                              css=CSS + EMBED_CSS, **common)  # fmt: skip
    app = gr.mount_gradio_app(app, queued(build_app(service), service), "", css=CSS, **common)
    app.add_middleware(FramePolicy, policy=frame_ancestors(access.allow_origins))
    return app


def serve(service: ChatService, access: Access, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve :func:`build_server` until interrupted."""
    uvicorn.run(build_server(service, access), host=host, port=port, log_level="warning")
