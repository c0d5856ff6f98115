"""Every sentence Rudder shows to people, in one place, so tests assert against the same text."""

BOUND_CONVERSATION_READ_ONLY = (
    "This conversation is bound to a Feishu chat and is read-only here: replies come from Feishu "
    "or from the agent's outbound work. Fork it to continue locally."
)
RUN_INTERRUPTED = "Rudder stopped while this run was in progress; it did not finish."
RUN_CANCELLED = "Stopped."
AGENT_PAUSED = "This agent is paused; resume it in its Configuration to get replies."
EXAMPLE_AGENT_LABEL = "Example agent — offline, for trying Rudder out"
