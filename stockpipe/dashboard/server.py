"""The dashboard's web server: ``stockpipe dashboard`` runs ``streamlit run`` on this file.

Streamlit's ASGI app for :data:`stockpipe.dashboard.APP`, with one addition: the page's
first HTML carries the dashboard's title. Streamlit sets the title from
``st.set_page_config`` only once its script runs, so a tab (and a link preview, and a
bookmark) first says "Streamlit" (streamlit/streamlit#9058).
"""

from __future__ import annotations

import streamlit as st
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockpipe.dashboard import APP, PAGE_TITLE

STREAMLIT_TITLE = b"<title>Streamlit</title>"
# Streamlit's own paths (health, websocket, media, assets): never the page's HTML.
SERVER_PATHS = ("/_stcore/", "/static/", "/component/", "/media/")


class PageTitle:
    """ASGI middleware: the page's HTML with ``title`` in place of Streamlit's.

    Args:
        app: the app it wraps.
        title: the title (plain text, no markup).
    """

    def __init__(self, app: ASGIApp, title: str) -> None:
        self.app = app
        self.title = f"<title>{title}</title>".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(SERVER_PATHS):
            await self.app(scope, receive, send)
            return
        # The page is ~2 KB: asked for uncompressed, its bytes can be rewritten.
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]

        async def retitled(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The length changes with the title: sent chunked instead.
                message = {
                    **message,
                    "headers": [
                        (k, v) for k, v in message["headers"] if k.lower() != b"content-length"
                    ],
                }
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                message = {**message, "body": body.replace(STREAMLIT_TITLE, self.title)}
            await send(message)

        await self.app({**scope, "headers": headers}, receive, retitled)


app = st.App(str(APP), middleware=[Middleware(PageTitle, title=PAGE_TITLE)])
