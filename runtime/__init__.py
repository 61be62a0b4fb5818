"""Process plumbing of the worker and the CLI.

Settings, the Temporal connection, converter, codec, TLS, logs, telemetry, tracing, metrics,
start-up checks, the dev server, and hosting (`build.py`, `plugin.py`, `processes.py`).
"""
