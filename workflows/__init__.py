"""Temporal side of Airlock: workflows, the activities they schedule, and the durable runner glue."""
