"""The worker side: the activities runs schedule, and what they need.

Authority at the write, the agent catalog, model backends, the approvers file, pipelines,
tool policy, Cedar rules and pinned tool definitions.
"""
