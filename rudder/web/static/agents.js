// Agents and Messenger behaviour, driven by data attributes (no inline script or handlers).
//  - [data-runtime-select]: shows only the chosen runtime's [data-runtime-section] fields.
//  - [data-live-url]: listens to the organization's server-sent events and fires
//    `rudder:live` on <body>, which htmx elements use to fetch their lists again.
(function () {
  "use strict";

  function runtimeSections(root) {
    root.querySelectorAll("[data-runtime-select]").forEach(function (select) {
      var form = select.form || document;
      function update() {
        form.querySelectorAll("[data-runtime-section]").forEach(function (section) {
          section.hidden = section.getAttribute("data-runtime-section") !== select.value;
        });
      }
      select.addEventListener("change", update);
      update();
    });
  }

  function liveLists() {
    var anchor = document.querySelector("[data-live-url]");
    if (!anchor || !window.EventSource) return;
    var source = new EventSource(anchor.getAttribute("data-live-url"));
    var timer = null;
    function poke() {
      // Several events in a burst (a run ends, a budget alert opens) → one refresh.
      clearTimeout(timer);
      timer = setTimeout(function () {
        document.body.dispatchEvent(new CustomEvent("rudder:live"));
      }, 150);
    }
    ["run.failed", "budget.updated", "agent.status", "conversation.updated"].forEach(function (name) {
      source.addEventListener(name, poke);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    runtimeSections(document);
    liveLists();
  });
})();
