"""Temporal's limits on what a run records, and the smaller budgets Airlock keeps under them.

Pure constants, safe in workflow code. A value that comes from a model or an MCP server is
measured against these on the worker before it is recorded; what does not fit fails with a typed
error naming the limit, instead of a workflow task that fails (TMPRL1103) on every retry.
docs/configuration.md ("Payload limits") lists them with the reasons.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB

# --- Temporal's own (server defaults: `limit.blobSize.error`, `limit.historySize.*`,
# `limit.historyCount.*`, the frontend's gRPC message size) -----------------------------------
# One payload (an activity result, a marker, a continue-as-new input): bigger fails the task.
TEMPORAL_PAYLOAD_BYTES = 2 * MIB
# A history past this is warned about; past the hard limit the run is terminated.
TEMPORAL_HISTORY_WARN_BYTES = 10 * MIB
TEMPORAL_HISTORY_BYTES = 50 * MIB
TEMPORAL_HISTORY_EVENTS = 51_200
# One workflow task completion, with every local activity marker it carries.
TEMPORAL_TASK_COMPLETION_BYTES = 4 * MIB

# --- Airlock's budgets -------------------------------------------------------------------------
# A tool's description: longer ones are cut with a marker (the tool stays usable).
MAX_TOOL_DESCRIPTION_BYTES = 8 * KIB
# A tool's input schema as JSON: a bigger one cannot be cut and stay a schema, so the tool is hidden.
MAX_TOOL_SCHEMA_BYTES = 32 * KIB
# Tools one server may give one agent (OpenAI's API takes at most 128 tools per request).
MAX_TOOLS_PER_SERVER = 128
# The `prepare` result: recorded once per run and carried by every continue-as-new.
MAX_PLAN_BYTES = 512 * KIB
# One model reply (the `model` activity's result).
MAX_MODEL_REPLY_BYTES = 512 * KIB
# Tool calls in one model reply. The Agents SDK handles a reply's calls in one workflow task, and
# a thousand took past Temporal's 2 s deadlock timeout, so the task was retried for ever; a reply
# with more is a `ModelError` naming this limit before it is recorded.
MAX_TOOL_CALLS_PER_REPLY = 64
# The conversation a run carries into its next history; older tool outputs are cut to fit.
MAX_CARRIED_STATE_BYTES = 512 * KIB
# The whole continue-as-new input (plan, conversation, approvals, audit).
MAX_CHECKPOINT_BYTES = 1536 * KIB
# Local activity results recorded by one workflow task: past this the next one waits for a new task.
MAX_LOCAL_RESULTS_PER_TASK_BYTES = 1 * MIB
# What one local tool read may add (the setting `AIRLOCK_MAX_RESULT_BYTES` plus the reply's framing);
# the setting is capped so that a read always fits.
MAX_RESULT_BYTES_CEILING = 256 * KIB
READ_REPLY_OVERHEAD_BYTES = 4 * KIB

# Each budget leaves room under the limit it protects.
assert MAX_PLAN_BYTES + MAX_CARRIED_STATE_BYTES < MAX_CHECKPOINT_BYTES < TEMPORAL_PAYLOAD_BYTES
assert MAX_MODEL_REPLY_BYTES <= MAX_LOCAL_RESULTS_PER_TASK_BYTES < TEMPORAL_TASK_COMPLETION_BYTES // 2
