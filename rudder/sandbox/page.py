"""A small page where a person acts as a Feishu user and chats with sandbox bots."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

# Plain HTML, with its script and styles served beside it (the page's Content-Security-Policy
# allows no inline script or style: it shows message text anyone can write). The script polls
# /_sandbox/api/version and re-renders the open chat when anything changed (edits and streaming
# cards included); everything it shows goes through esc().
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Feishu/Lark sandbox</title>
<link rel="stylesheet" href="/_sandbox/page.css"><script src="/_sandbox/page.js" defer></script>
<script src="/_sandbox/page-extras.js" defer></script>
</head><body class="people">
<aside>
<h3>You are</h3><select id="user"></select>
<form id="new-user"><input id="user-name" placeholder="new user name">
<button>Add</button></form>
<h3>Bots</h3><div id="bots"></div>
<button id="new-group">New group with checked bots</button>
<h3>Chats</h3><div id="chats"></div>
<h3>Pending app registrations</h3><div id="regs"></div>
</aside>
<main><div id="log"><p>Pick a user, then DM a bot or start a group.</p></div>
<form id="send"><span id="mentions"></span>
<label><input type="checkbox" id="at-all"> @all</label>
<input id="text" placeholder="Message" autocomplete="off"><button>Send</button></form></main>
</body></html>"""

CSS = """body.people{font:14px system-ui,sans-serif;margin:0;display:grid;grid-template-columns:18em 1fr;height:100vh}
.people aside{border-right:1px solid #dde;padding:1em;overflow:auto;background:#f7f8fa}
.people main{display:flex;flex-direction:column;height:100vh}
#log{flex:1;overflow:auto;padding:1em}
.msg{margin:.4em 0;padding:.5em .7em;border-radius:8px;background:#eef;max-width:46em;white-space:pre-wrap}
.msg.app{background:#e8f6ec}.meta{color:#667;font-size:12px}
.chat{cursor:pointer;padding:.2em .3em;border-radius:4px}.chat.sel{background:#dde6ff}
.people form{display:flex;gap:.5em;padding:.8em;border-top:1px solid #dde;align-items:center;flex-wrap:wrap}
.people form#new-user{padding:0;border:0}
#text{flex:1;min-width:12em;padding:.5em}.people h3{margin:1em 0 .3em}
body.confirm{font:15px system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}
.confirm .card{border:1px solid #ccd;border-radius:8px;padding:1.2em}
.confirm button{font-size:1em;padding:.5em 1.2em;margin-right:.6em}
.confirm dt{color:#667;margin-top:.6em}
.extras img{max-width:16em;display:block;margin-top:.4em}.extras a,.card-button{margin:.3em .3em 0 0}
#sandbox-toast{position:fixed;top:1em;right:1em;padding:.6em 1em;border-radius:6px;background:#333;color:#fff;z-index:10}
"""

SCRIPT = """"use strict";
const API = "/_sandbox/api";
// The chosen user and chat survive a reload (per browser), as a Feishu client remembers its account.
const remembered = (() => { try { return JSON.parse(localStorage.getItem("sandbox.page") || "{}"); } catch (e) { return {}; } })();
let state = {user: remembered.user || null, chat: remembered.chat || null, version: -1, apps: [], chats: []};
function remember() { try { localStorage.setItem("sandbox.page", JSON.stringify({user: state.user, chat: state.chat})); } catch (e) {} }
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
// Links in messages are clickable, as in Feishu. Runs on escaped text: no quote or angle bracket
// can be in a match, so a link can't leave its attribute.
const linkify = (escaped) => escaped.replace(/\\bhttps?:\\/\\/[^\\s<>"']+[^\\s<>"'.,;:!?)]/g, u => `<a href="${u}" target="_blank" rel="noopener noreferrer">${u}</a>`);
async function call(method, path, body) {
  const r = await fetch(API + path, {method, headers: {"Content-Type": "application/json"},
    body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) { alert(data.detail || r.status); throw new Error(data.detail); }
  return data;
}
async function refresh() {
  const users = (await call("GET", "/users")).items;
  state.apps = (await call("GET", "/apps")).items;
  const sel = $("user");
  if (state.user && !users.some(u => u.user_id === state.user)) { state.user = null; state.chat = null; }
  if (!state.user && users.length) state.user = users[0].user_id;
  sel.innerHTML = users.map(u => `<option value="${esc(u.user_id)}" ${u.user_id === state.user ? "selected" : ""}>${esc(u.name)}</option>`).join("");
  $("bots").innerHTML = state.apps.map(a => `<div><label><input type="checkbox" class="bot-pick" value="${esc(a.app_id)}"> ${esc(a.name)}</label>
    <button data-dm="${esc(a.app_id)}">DM</button> <small>${esc(a.brand)}</small></div>`).join("") || "<i>none yet</i>";
  state.chats = state.user ? (await call("GET", "/chats?user_id=" + encodeURIComponent(state.user))).items : [];
  if (state.chat && !state.chats.some(c => c.chat_id === state.chat)) state.chat = null;
  remember();
  $("chats").innerHTML = state.chats.map(c => `<div class="chat ${c.chat_id === state.chat ? "sel" : ""}" data-chat="${esc(c.chat_id)}">
    ${c.type === "p2p" ? "DM" : "Group"}: ${esc(c.type === "p2p" ? botName(c.app_ids[0]) : c.name)}</div>`).join("");
  const regs = (await call("GET", "/registrations?status=pending")).items;
  $("regs").innerHTML = regs.map(r => `<div><a href="/page/cli?user_code=${encodeURIComponent(r.user_code)}" target="_blank">${esc(r.user_code)}</a></div>`).join("") || "<i>none</i>";
  await renderChat();
}
function botName(appId) { const a = state.apps.find(x => x.app_id === appId); return a ? a.name : appId; }
async function renderChat() {
  const chat = state.chats.find(c => c.chat_id === state.chat);
  if (!chat) { $("mentions").innerHTML = ""; return; }
  $("mentions").innerHTML = chat.type === "group" ? chat.app_ids.map(a => `<label><input type="checkbox" class="mention" value="${esc(a)}"> @${esc(botName(a))}</label>`).join(" ") : "";
  const msgs = (await call("GET", `/chats/${encodeURIComponent(chat.chat_id)}/messages`)).items;
  const log = $("log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
  log.innerHTML = msgs.map(m => `<div class="msg ${esc(m.sender.sender_type)}"><div class="meta">${esc(m.sender.name)}
    · ${esc(m.msg_type)}${m.edits ? " · edited " + esc(m.edits) + "x" : ""}${m.streaming ? " · streaming…" : ""}
    ${m.reactions.map(r => " · " + esc(r.emoji_type)).join("")}</div>${linkify(esc(m.text))}</div>`).join("");
  if (atBottom) log.scrollTop = log.scrollHeight;
}
async function poll() {
  try {
    const v = (await (await fetch(API + "/version")).json()).version;
    if (v !== state.version) { state.version = v; await refresh(); }
  } catch (e) {}
  setTimeout(poll, 400);
}
$("user").addEventListener("change", (e) => { state.user = e.target.value; state.chat = null; refresh(); });
$("new-user").addEventListener("submit", async (e) => { e.preventDefault(); const name = $("user-name").value.trim();
  if (name) { state.user = (await call("POST", "/users", {name})).user_id; $("user-name").value = ""; refresh(); } });
document.body.addEventListener("click", async (e) => {
  const dm = e.target.dataset.dm, chat = e.target.closest("[data-chat]");
  if (dm && state.user) { state.chat = (await call("POST", "/chats", {type: "p2p", user_ids: [state.user], app_ids: [dm]})).chat_id; refresh(); }
  if (chat) { state.chat = chat.dataset.chat; refresh(); }
});
$("new-group").addEventListener("click", async () => {
  const apps = [...document.querySelectorAll(".bot-pick:checked")].map(x => x.value);
  if (!state.user) return;
  state.chat = (await call("POST", "/chats", {type: "group", user_ids: [state.user], app_ids: apps, name: "Group " + (state.chats.length + 1)})).chat_id;
  refresh();
});
$("send").addEventListener("submit", async (e) => {
  e.preventDefault(); if (!state.chat) return;
  const text = $("text").value; if (!text.trim()) return;
  const mention_app_ids = [...document.querySelectorAll(".mention:checked")].map(x => x.value);
  await call("POST", `/chats/${encodeURIComponent(state.chat)}/messages`, {user_id: state.user, text, mention_app_ids, mention_all: $("at-all").checked});
  $("text").value = ""; refresh();
});
poll();
"""


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def script(request: Request) -> Response:
    return Response(SCRIPT, media_type="text/javascript")


async def stylesheet(request: Request) -> Response:
    return Response(CSS, media_type="text/css")


async def root(request: Request) -> Response:
    return RedirectResponse("/_sandbox/")


routes = [
    Route("/_sandbox/", page, methods=["GET"]),
    Route("/_sandbox/page.js", script, methods=["GET"]),
    Route("/_sandbox/page.css", stylesheet, methods=["GET"]),
    Route("/_sandbox", root, methods=["GET"]),
    Route("/", root, methods=["GET"]),
]
