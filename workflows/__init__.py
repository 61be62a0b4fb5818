"""Inside a workflow: the workflow classes and their handlers, the gate, judging, payloads, errors.

Deterministic, and imports nothing of Airlock's outside this folder (tests/workflows/test_determinism.py).
"""
