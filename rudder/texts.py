"""Every sentence Rudder shows to people, in one place, so tests assert against the same text."""

BOUND_CONVERSATION_READ_ONLY = (
    "This conversation is bound to a Feishu chat and is read-only here: replies come from Feishu "
    "or from the agent's outbound work. Fork it to continue locally."
)
RUN_INTERRUPTED = "Rudder stopped while this run was in progress; it did not finish."
RUN_CANCELLED = "Stopped."
AGENT_PAUSED = "This agent is paused; resume it in its Configuration to get replies."
EXAMPLE_AGENT_LABEL = "Example agent — offline, for trying Rudder out"

# -- Feishu / Lark connect ------------------------------------------------------------------------
SETUP_EXPIRED = "Setup expired — start again from the agent's Integrations tab."
SETUP_DENIED = "The app authorization was declined in {product}. Start again when you are ready."
SETUP_WRONG_PRODUCT = (
    "This app was authorized in {actual}, but the setup was started for {chosen}. "
    "Start again and choose {actual}."
)
SETUP_REPLACED = "Replaced by a newer setup for this agent."
SETUP_SERVER_ERROR = "{product} answered the setup with an error: {detail}"
CREDENTIALS_UNKNOWN = (
    "{product} does not accept App ID {app_id} with this App Secret ({detail}). Check both values; "
    "if the app was created in {other}, choose {other}."
)
APP_ALREADY_CONNECTED = (
    "App {app_id} is already connected to the agent {agent}; disconnect it there first."
)
SLASH_MANUAL_STEPS = (
    "Add the commands by hand in the {product} developer console (Bot → Slash commands): "
    "/new — Start a fresh conversation; /stop — Stop the reply in progress."
)
