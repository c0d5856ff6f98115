// Live conversation: applies the SSE events of /api/conversations/{id}/events to the thread.
// `message.delta` carries the offset of its text, so text already shown (from the page or a
// snapshot) is never appended twice, and a reconnect (Last-Event-ID) resumes cleanly.
(function () {
  "use strict";
  var root = document.getElementById("conversation");
  if (!root) return;
  var conversationId = root.getAttribute("data-conversation-id");
  var thread = document.getElementById("thread");
  var stopForm = document.getElementById("stop-form");
  var composer = document.getElementById("composer");
  var errorBox = document.getElementById("composer-error");
  var agentName = root.getAttribute("data-agent-name") || "Agent";
  var viewerId = root.getAttribute("data-viewer-id") || "";
  var userNames = {};
  try { userNames = JSON.parse(root.getAttribute("data-user-names") || "{}") || {}; } catch (ignored) { userNames = {}; }
  var agentNames = {};  // the organization's agents: a hand-off's message is its agent's
  try { agentNames = JSON.parse(root.getAttribute("data-agent-names") || "{}") || {}; } catch (ignored) { agentNames = {}; }

  // The same words as the server's template (messenger/page.html), so a message never changes
  // its author's name when the live stream re-renders it.
  function authorOf(m) {
    if (m.role === "assistant") return agentName;
    if (m.role !== "user") return "system";
    if (m.author_agent_id && agentNames[m.author_agent_id]) return agentNames[m.author_agent_id] + " \u00b7 hand-off";
    var name = m.author_user_id && m.author_user_id === viewerId ? "You"
      : (userNames[m.author_user_id] || (m.external_sender_id ? "Feishu user" : "Member"));
    return m.external_sender_id ? name + " \u00b7 via Feishu" : name;
  }
  var active = {};
  var htmlShown = {};

  function messageNode(id) {
    return thread.querySelector('[data-message-id="' + id + '"]');
  }

  // Images inline, other files as downloads (the URLs answer only to this conversation's readers).
  var INLINE = ["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"];
  function renderAttachments(node, list) {
    var box = node.querySelector(".attachments");
    if (box) box.remove();
    if (!list.length) return;
    box = document.createElement("span");
    box.className = "attachments";
    box.setAttribute("data-testid", "attachments");
    list.forEach(function (a) {
      var el;
      if (a.url && INLINE.indexOf(a.mime_type) >= 0) {
        el = document.createElement("a");
        el.className = "attachment image";
        el.href = a.url; el.target = "_blank"; el.rel = "noopener";
        var img = document.createElement("img");
        img.src = a.url; img.alt = a.name; img.loading = "lazy";
        el.appendChild(img);
      } else if (a.url) {
        el = document.createElement("a");
        el.className = "attachment file";
        el.href = a.url; el.setAttribute("download", a.name);
        el.textContent = a.name + " (" + a.size + " bytes)";
      } else {
        el = document.createElement("span");
        el.className = "attachment missing muted small";
        el.textContent = a.name + ": " + (a.reason || a.status);
      }
      box.appendChild(el);
    });
    var body = node.querySelector(".body");
    body.parentNode.insertBefore(box, body.nextSibling);
  }

  function render(m) {
    var node = messageNode(m.id);
    if (!node) {
      node = document.createElement("div");
      node.setAttribute("data-message-id", m.id);
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = authorOf(m);
      var body = document.createElement("span");
      body.className = "body";
      node.appendChild(who);
      node.appendChild(body);
      thread.appendChild(node);
    }
    node.className = "msg " + m.role + " " + m.status;
    node.setAttribute("data-status", m.status);
    var body = node.querySelector(".body");
    // A finished reply comes with its Markdown rendered (and made safe) by the server.
    if (m.body_html) {
      if (htmlShown[m.id] !== m.body_html) {
        body.innerHTML = m.body_html;
        htmlShown[m.id] = m.body_html;
        body.classList.add("md");
      }
    } else {
      delete htmlShown[m.id];
      body.classList.remove("md");
      body.textContent = m.body || "";
    }
    if (Array.isArray(m.attachments)) renderAttachments(node, m.attachments);
    var err = node.querySelector(".err");
    var note = m.status === "failed" ? (m.error || "failed") : m.status === "stopped" ? "Stopped." : "";
    if (note) {
      if (!err) { err = document.createElement("span"); err.className = "err"; node.appendChild(err); }
      err.textContent = note;
    } else if (err) {
      err.remove();
    }
    return node;
  }

  function applyDelta(d) {
    var node = messageNode(d.message_id);
    if (!node) node = render({ id: d.message_id, role: "assistant", status: "streaming", body: "" });
    var body = node.querySelector(".body");
    var have = body.textContent.length;
    var end = d.offset + d.delta.length;
    if (d.offset > have || end <= have) return; // a gap (message.updated will fill it) or old text
    body.textContent += d.delta.slice(have - d.offset);
    thread.scrollTop = thread.scrollHeight;
  }

  function setRuns(runs) {
    active = {};
    runs.forEach(function (r) { active[r.id] = true; });
    updateStop();
  }

  function updateStop() {
    if (stopForm) stopForm.hidden = Object.keys(active).length === 0;
  }

  // Messages that arrive while the page is shown are read: tell Rudder, so Messenger's unread
  // mark (stored per member, across devices) does not light up for them. One call per burst.
  var seenTimer = null;
  function sendSeen() {
    seenTimer = null;
    if (document.visibilityState === "hidden") return;
    fetch("/messenger/" + conversationId + "/seen", {
      method: "POST", headers: { "X-Requested-With": "fetch" }, credentials: "same-origin",
    }).catch(function () {});
  }
  function markSeen() {
    if (!seenTimer) seenTimer = setTimeout(sendSeen, 500);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") markSeen();
  });

  var source = new EventSource("/api/conversations/" + conversationId + "/events");
  source.addEventListener("snapshot", function (e) {
    var data = JSON.parse(e.data);
    data.messages.forEach(render);
    setRuns(data.active_runs);
  });
  source.addEventListener("message.created", function (e) { render(JSON.parse(e.data)); markSeen(); });
  source.addEventListener("message.updated", function (e) {
    var m = JSON.parse(e.data);
    render(m);
    if (m.status !== "streaming") markSeen();
  });
  source.addEventListener("message.delta", function (e) { applyDelta(JSON.parse(e.data)); });
  source.addEventListener("run.updated", function (e) {
    var run = JSON.parse(e.data);
    if (run.status === "queued" || run.status === "running") active[run.id] = true;
    else delete active[run.id];
    updateStop();
  });
  window.addEventListener("pagehide", function () { source.close(); });

  function post(form) {
    var picker = form.querySelector('input[type="file"]');
    var withFiles = picker && picker.files && picker.files.length > 0;
    // Files go as multipart (their bytes); a text-only message stays a small urlencoded form.
    var data = new FormData(form);
    if (!withFiles) data.delete("files");
    return fetch(form.action, {
      method: "POST",
      body: withFiles ? data : new URLSearchParams(data),
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    });
  }

  if (composer) {
    var textarea = composer.querySelector("textarea");
    textarea.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        composer.requestSubmit();
      }
    });
    composer.addEventListener("submit", function (e) {
      e.preventDefault();
      var picker = composer.querySelector('input[type="file"]');
      var hasFiles = picker && picker.files && picker.files.length > 0;
      if (!textarea.value.trim() && !hasFiles) return;
      errorBox.textContent = "";
      post(composer).then(function (r) {
        if (r.ok) { textarea.value = ""; if (picker) picker.value = ""; return; }
        return r.text().then(function (t) { errorBox.textContent = t; });
      }, function () { errorBox.textContent = "Could not reach Rudder; try again."; });
    });
  }
  if (stopForm) {
    stopForm.addEventListener("submit", function (e) {
      e.preventDefault();
      post(stopForm);
    });
  }
})();
