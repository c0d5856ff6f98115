// The sandbox user page, part two: send an image or a file, see media, press card buttons.
// It reads only the page's DOM (the user <select id="user">, the open chat `.chat.sel`, the
// rendered `.msg` elements of #log, oldest first) and the control API.
(() => {
  const API = "/_sandbox/api";
  const $ = (id) => document.getElementById(id);
  const currentUser = () => ($("user") || {}).value || null;
  const currentChat = () => {
    const sel = document.querySelector(".chat.sel[data-chat]");
    return sel ? sel.dataset.chat : null;
  };
  async function call(method, path, body) {
    const r = await fetch(API + path, {method, headers: {"Content-Type": "application/json"},
      body: body === undefined ? undefined : JSON.stringify(body)});
    const data = await r.json();
    if (!r.ok) throw new Error(data.detail || String(r.status));
    return data;
  }
  function toast(text, kind) {
    let box = $("sandbox-toast");
    if (!box) {
      box = document.createElement("div");
      box.id = "sandbox-toast";
      document.body.appendChild(box);
    }
    box.textContent = text;
    box.dataset.kind = kind || "info";
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  // -- sending a file or an image ---------------------------------------------------------
  function kindOf(file) {
    if (file.type.startsWith("image/")) return "image";
    if (file.type.startsWith("audio/")) return "audio";
    if (file.type.startsWith("video/")) return "media";
    return "file";
  }
  function base64Of(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }
  function addFilePicker() {
    const form = $("send");
    if (!form || $("attach")) return;
    const input = document.createElement("input");
    input.type = "file";
    input.id = "attach";
    input.title = "Send an image or a file";
    form.appendChild(input);
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      const chat = currentChat(), user = currentUser();
      if (!file || !chat || !user) return;
      try {
        await call("POST", `/chats/${chat}/messages`, {user_id: user, message_type: kindOf(file),
          data_base64: await base64Of(file), file_name: file.name, mime_type: file.type || undefined});
      } catch (e) { toast(e.message, "error"); }
      input.value = "";
    });
  }

  // -- showing media and card buttons -----------------------------------------------------
  function buttonsOf(node, found) {
    if (Array.isArray(node)) { node.forEach((n) => buttonsOf(n, found)); return found; }
    if (!node || typeof node !== "object") return found;
    if (node.tag === "button") {
      const behaviour = (node.behaviors || []).find((b) => b && b.type === "callback");
      const text = (node.text && node.text.content) || node.name || "button";
      found.push({text, name: node.name, value: behaviour ? behaviour.value : (node.value || {})});
    }
    for (const [key, value] of Object.entries(node)) {
      if (key !== "config" && value && typeof value === "object") buttonsOf(value, found);
    }
    return found;
  }
  function decorate(el, m) {
    const box = document.createElement("div");
    box.className = "extras";
    if (m.thread_id) {
      const label = document.createElement("div");
      label.className = "meta";
      label.textContent = `topic ${m.thread_id}`;
      box.appendChild(label);
    }
    for (const r of m.resources || []) {
      if (!r.stored) continue;
      const url = `${API}/resources/${encodeURIComponent(r.key)}`;
      if (r.type === "image") {
        const img = document.createElement("img");
        img.src = url; img.alt = r.file_name || "image";
        box.appendChild(img);
      } else {
        const a = document.createElement("a");
        a.href = url; a.textContent = `${r.file_name} (${r.size} bytes)`; a.download = r.file_name;
        box.appendChild(a);
      }
    }
    if (m.card) {
      for (const b of buttonsOf(m.card, [])) {
        const btn = document.createElement("button");
        btn.type = "button"; btn.className = "card-button"; btn.textContent = b.text;
        btn.addEventListener("click", async () => {
          const user = currentUser(); if (!user) return;
          try {
            const res = await call("POST", `/messages/${m.message_id}/actions`,
              {user_id: user, value: b.value, tag: "button", name: b.name || undefined});
            const content = res.toast && res.toast.content;
            toast(content || (res.status === "answered" ? "Done" : `Callback ${res.status}`),
              res.status === "answered" ? (res.toast && res.toast.type) : "error");
          } catch (e) { toast(e.message, "error"); }
        });
        box.appendChild(btn);
      }
    }
    if (box.childNodes.length) el.appendChild(box);
  }
  let busy = false, again = false;
  async function enhance() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const chat = currentChat();
      const els = [...document.querySelectorAll("#log .msg")].filter((e) => !e.querySelector(".extras"));
      if (chat && els.length) {
        const items = (await call("GET", `/chats/${chat}/messages`)).items;
        const all = [...document.querySelectorAll("#log .msg")];
        if (all.length === items.length) {
          all.forEach((el, i) => { if (!el.querySelector(".extras")) decorate(el, items[i]); });
        }
      }
    } catch (e) { /* the next change retries */ }
    busy = false;
    if (again) { again = false; enhance(); }
  }
  function start() {
    addFilePicker();
    const log = $("log");
    if (log) new MutationObserver((records) => {
      const ours = records.every((r) => [...r.addedNodes].every((n) => n.classList && n.classList.contains("extras")));
      if (!ours) enhance();
    }).observe(log, {childList: true, subtree: true});
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
