"""The approval inbox: a web page where approvers see every waiting call, decide, and audit.

`airlock inbox` serves it; `python worker.py --dev` serves it too, with a dev identity.
"""

from __future__ import annotations

from console.inbox.server import DEV_PERSON, bind, inbox_url, make_app, serve

__all__ = ["DEV_PERSON", "bind", "inbox_url", "make_app", "serve"]
