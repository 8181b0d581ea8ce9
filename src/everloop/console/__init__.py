"""The web console: plain HTML, CSS and JavaScript modules served by ``everloop serve`` at ``/``.

There is no build step and no Node: the files under ``static/`` are the console, shipped in the
wheel as package data, so the README's two commands still give a working UI, offline (no CDN,
no outside fonts). The console is a client of the public API like any other: it signs in with a
bearer token kept in the browser's session storage and calls ``/api/v1`` (SSE read over
``fetch`` so it can send the token, resumed by event sequence after a drop). Nothing here
reaches the services or the store: ``api/app.py`` only mounts these files.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "static"

__all__ = ["ASSETS"]
