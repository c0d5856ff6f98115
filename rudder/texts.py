"""Every sentence Rudder shows to people, in one place, so tests assert against the same text."""

BOUND_CONVERSATION_READ_ONLY = (
    "This conversation is bound to a Feishu chat and is read-only here: replies come from Feishu "
    "or from the agent's outbound work. Fork it to continue locally."
)
RUN_INTERRUPTED = "Rudder stopped while this run was in progress; it did not finish."
RUN_INTERRUPTED_RETRY = (
    "Rudder stopped while this run was in progress; it is being run again from the start."
)
RUN_CANCELLED = "Stopped."
AGENT_PAUSED = "This agent is paused; resume it in its Configuration to get replies."
EXAMPLE_AGENT_LABEL = "Example agent — offline, for trying Rudder out"

# -- Feishu / Lark connect ------------------------------------------------------------------------
SETUP_EXPIRED = "Setup expired — start again from the agent's Integrations tab."
SETUP_DENIED = "The app authorization was declined in {product}. Start again when you are ready."
SETUP_WRONG_PRODUCT = (
    "This app was authorized in {actual}, but the setup was started for {chosen}. "
    "Check whether you selected Feishu CN or Lark Global: start again and choose {actual}."
)
SETUP_REPLACED = "Replaced by a newer setup for this agent."
SETUP_SERVER_ERROR = "{product} answered the setup with an error: {detail}"
CREDENTIALS_UNKNOWN = (
    "{product} does not accept App ID {app_id} with this App Secret ({detail}). Check both values, "
    "and check whether you selected Feishu CN or Lark Global: an app created in {other} only works there."
)
SETUP_UNREACHABLE = (
    "{product} could not be reached during the setup ({detail}). Start again when it is reachable."
)
ALREADY_CONNECTED = "This agent is already connected to {product} as {bot}. Disconnect it first, or ask to reconnect."
APP_ALREADY_CONNECTED = (
    "App {app_id} is already connected to the agent {agent}; disconnect it there first."
)
SLASH_MANUAL_STEPS = (
    "Add the commands by hand in the {product} developer console (Bot → Slash commands): "
    "/new — Start a fresh conversation; /stop — Stop the reply in progress."
)

# -- Feishu chats ---------------------------------------------------------------------------------
FEISHU_NEW_STARTED = "Started a fresh conversation. Earlier messages stay in Rudder."
FEISHU_STOPPED = "Stopped."
FEISHU_NOTHING_RUNNING = "Nothing is running right now."
FEISHU_HELP = (
    "Commands:\n/new — start a fresh conversation for this chat\n/stop — stop the reply in progress\n"
    "/help — show this list"
)
FEISHU_NON_TEXT = "I can only read text for now — please send your message as text."
FEISHU_BINDING_PROMPT = (
    "Before I can help, link your Feishu account to your Rudder account (one time, 15 minutes): "
    "{url}\nThen send your message again."
)
FEISHU_BINDING_DONE = (
    "Your Feishu account is now linked to {name}. Send your message again in Feishu."
)
FEISHU_BINDING_INVALID = (
    "This link is invalid, expired or already used. Send the bot a message to get a new one."
)
FEISHU_BINDING_NOT_MEMBER = "You are not a member of the organization that owns this bot."

# -- Feishu / Lark replies ------------------------------------------------------------------------
REPLY_CARD_SUMMARY = "Working…"
REPLY_STOPPED = "Stopped"
REPLY_FAILED = "Failed: {reason}"
# What a Feishu user sees for any other failure: never the error itself (it may carry SQL, a
# stack trace or an internal host name); the reference leads to the run's page and the log.
REPLY_FAILED_GENERIC = (
    "Failed: something went wrong while answering. Reference: {ref} "
    "(the details are on this run's page in Rudder)."
)
REPLY_DELIVERY_FAILED = "The reply could not be delivered to {product}: {detail}"
REPLY_EMPTY = "(The agent finished without a reply.)"

# -- Web pages ------------------------------------------------------------------------------------
WEB_AGENT_NOT_FOUND = "There is no such agent in your organizations."
WEB_CONVERSATION_NOT_FOUND = "There is no such conversation in your organizations."
WEB_RUN_NOT_FOUND = "There is no such run for this agent."
WEB_NO_AGENTS = "No agents yet."
WEB_NO_RUNS = "No runs yet. Start a conversation with this agent to see its runs here."
WEB_NO_CONVERSATIONS = "No conversations yet."
WEB_PICK_CONVERSATION = "Choose a conversation, or start a new one with an agent."
WEB_FORKED_FROM = "Forked from"
WEB_MESSAGE_EMPTY = "Write a message first."
WEB_SAVED = "Saved."
WEB_EXAMPLE_AGENT_HINT = (
    "This is the bundled example agent: it answers offline so you can try Rudder out. "
    "Choose another runtime below to give it a real model."
)
WEB_CONFIG_HINT = "A JSON object; its fields depend on the runtime. Secrets are referenced by name."
WEB_CONFIG_NOT_JSON = "Runtime settings are not valid JSON: {detail} (line {line})."
WEB_CONFIG_NOT_OBJECT = 'Runtime settings must be a JSON object, like {"command": "..."}.'
WEB_INTEGRATION_INTRO = (
    "One Feishu or Lark bot for this agent: messages, runs and chat bindings all point back to it."
)
WEB_CONNECT_HINT = "Opens Feishu or Lark in a new tab with the bot name prefilled."
WEB_CHOOSE_REGION = "Choose Feishu CN or Lark Global first."
WEB_SETUP_START_FAILED = "Could not start the setup with {product}: {detail}"
WEB_SETUP_WAITING = "Confirm the app authorization in {product}; this page updates by itself."
WEB_SETUP_QR_HINT = "On a phone, scan the code instead."
WEB_MANUAL_INTRO = (
    "Already have an app? Paste its App ID and App Secret from the developer console."
)
WEB_WEBHOOK_NEEDS_TOKEN = (
    "The webhook transport needs the verification token (developer console → Events & callbacks)."
)
WEB_NO_INBOUND_EVENTS = "No messages received yet. Send the bot a message from Feishu or Lark."
WEB_MEMBER_ADDED = "Member added."
WEB_MEMBER_EMAIL_INVALID = "Enter a valid email address."
WEB_MEMBER_NAME_REQUIRED = "Enter the member's name."
WEB_MEMBER_ROLE_INVALID = "Choose a role: member, admin or owner."
WEB_MEMBER_NOT_ALLOWED = "Only owners and admins can add members."
WEB_SETTINGS_HINT = "Set through the environment (RUDDER_* variables); shown here read-only."

# -- Feishu member binding: the bind page and the Members page ----------------------------------
FEISHU_BINDING_PAGE_TITLE = "Link your Feishu account"
FEISHU_BINDING_PAGE_INTRO = (
    "The Feishu user {who} messaged {bot}, the bot of the agent {agent} in the organization "
    "{org}. Link that Feishu user to your Rudder account so the agent can answer them."
)
FEISHU_BINDING_PAGE_AS = "You will be linked as {name}."
FEISHU_BINDING_SIGN_IN = "Sign in to Rudder as a member of {org}, then open this link again."
FEISHU_BINDING_CONFIRM = "Link my account"
WEB_FEISHU_IDENTITIES = "Feishu identities"
WEB_FEISHU_IDENTITIES_INTRO = (
    "People who messaged this organization's bots. Until a Feishu user is bound to a member, "
    "the bot answers them with a binding prompt instead of running the agent."
)
WEB_NO_FEISHU_IDENTITIES = "No Feishu users have messaged this organization's bots yet."
WEB_FEISHU_NOT_BOUND = "Not bound"
WEB_FEISHU_BIND = "Bind to member"
WEB_FEISHU_UNBIND = "Unbind"
WEB_FEISHU_BOUND_DONE = "Feishu user bound."
WEB_FEISHU_UNBOUND_DONE = "Feishu user unbound."
WEB_FEISHU_BIND_NOT_ALLOWED = "Only owners and admins can bind or unbind Feishu users."

# -- Signing in (authenticated mode) --------------------------------------------------------------
AUTH_LOGIN_FAILED = "Email or password is incorrect."
AUTH_THROTTLED = "Too many failed sign-ins. Try again in {minutes} minute(s)."
AUTH_LOCAL_MODE = (
    "Rudder runs in local mode (RUDDER_DEPLOYMENT_MODE=local): there is no sign-in, "
    "the local owner is always signed in."
)
AUTH_SIGNED_OUT = "You are signed out."
AUTH_LOGIN_INTRO = "Sign in with the email and password your Rudder administrator set up."
AUTH_NO_ACCOUNT_HINT = "No account yet? An administrator creates one with `rudder user create`."
AUTH_TOKEN_AGENT_NOT_ALLOWED = "Only owners and admins can create API tokens for agents."
AUTH_TOKEN_NEEDS_USER = "Agent tokens cannot manage API tokens."
WEB_FEISHU_IDENTITY_UNKNOWN = "There is no such Feishu user for this organization's bots."
