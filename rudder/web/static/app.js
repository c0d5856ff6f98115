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
