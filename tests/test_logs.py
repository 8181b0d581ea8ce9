"""The log filter cuts URL queries out of messages and tracebacks (issue 13, item 11)."""

from __future__ import annotations

import io
import logging

from everloop.logs import UrlQueryFilter, strip_url_queries


def test_queries_and_fragments_are_cut_from_every_url() -> None:
    text = "GET https://h.example/a/b?key=s3cret&x=1#frag and wss://w.example:8443/s?t=1 done"
    assert strip_url_queries(text) == "GET https://h.example/a/b and wss://w.example:8443/s done"
    assert strip_url_queries("'http://h/p?k=v'") == "'http://h/p'"
    assert strip_url_queries("no url? here#") == "no url? here#"


def test_a_tracebacks_urls_lose_their_queries_too() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(UrlQueryFilter())
    logger = logging.getLogger("everloop.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("fetching http://h.example/x?token=s3cret failed")
        except RuntimeError:
            logger.exception("call to %s failed", "https://api.example/v1?api_key=s3cret")
    finally:
        logger.removeHandler(handler)
    written = out.getvalue()
    assert "call to https://api.example/v1 failed" in written
    assert "fetching http://h.example/x failed" in written
    assert "s3cret" not in written
