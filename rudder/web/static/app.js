// What the pages ask for with data attributes, so that no page needs an inline script or an
// inline event handler (the Content-Security-Policy allows neither; see rudder/web/headers.py).
//   <form data-confirm="Question?">  asks before submitting; Cancel keeps the page as it is.
//   <select data-autosubmit>         submits its form when the choice changes.
(function () {
  "use strict";
  // Capture phase: runs before htmx's own submit handler, so a cancelled form sends nothing.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (!(field instanceof Element) || !field.hasAttribute("data-autosubmit")) return;
    var form = field.form;
    if (!form) return;
    if (form.requestSubmit) form.requestSubmit();
    else form.submit();
  });
})();

// Failed htmx requests say why where the person clicked: htmx swaps nothing for a 4xx/5xx
// (except the 422 fragments that carry their own reason) and nothing when Rudder can't be
// reached, so without this a failed click would look like nothing happened.
(function () {
  "use strict";
  var MAX_CHARS = 300;

  function anchorOf(elt) {
    if (!(elt instanceof Element)) return null;
    return elt.closest("form") || elt;
  }

  function show(elt, message) {
    var anchor = anchorOf(elt);
    if (!anchor || !anchor.parentNode) return;
    var box = anchor.previousElementSibling;
    if (!box || !box.hasAttribute("data-request-error")) {
      box = document.createElement("p");
      box.className = "notice error";
      box.setAttribute("role", "alert");
      box.setAttribute("data-request-error", "");
      box.setAttribute("data-testid", "request-error");
      anchor.parentNode.insertBefore(box, anchor);
    }
    box.textContent = message;
  }

  function reasonOf(xhr) {
    var type = (xhr.getResponseHeader("content-type") || "").toLowerCase();
    var text = xhr.responseText || "";
    if (type.indexOf("application/json") !== -1) {
      try {
        var body = JSON.parse(text);
        if (body && typeof body.detail === "string") return body.detail;
      } catch (ignored) { /* fall through to the status line */ }
    } else if (type.indexOf("text/html") !== -1 && text) {
      var doc = new DOMParser().parseFromString(text, "text/html");
      var alert = doc.querySelector("[role=alert], .notice, h1");
      var words = (alert || doc.body).textContent.replace(/\s+/g, " ").trim();
      if (words) return words.slice(0, MAX_CHARS);
    } else if (text && text.length <= MAX_CHARS) {
      return text;
    }
    return "The request failed (HTTP " + xhr.status + ").";
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (!xhr || xhr.status === 422) return; // the fragment swapped in says why
    show(event.detail.elt, reasonOf(xhr));
  });

  document.addEventListener("htmx:sendError", function (event) {
    show(event.detail && event.detail.elt,
      "Rudder could not be reached: check that it is still running, then try again.");
  });

  // A later success clears the old reason.
  document.addEventListener("htmx:afterRequest", function (event) {
    var detail = event.detail;
    if (!detail || !detail.successful) return;
    var anchor = anchorOf(detail.elt);
    var box = anchor && anchor.previousElementSibling;
    if (box && box.hasAttribute("data-request-error")) box.remove();
  });
})();
