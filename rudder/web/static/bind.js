// The Feishu bind page (/bind/feishu/{code}): Confirm posts the code and shows the answer.
// The code and the texts come from data attributes; nothing here is built from HTML.
(function () {
  "use strict";
  var button = document.getElementById("b");
  var result = document.getElementById("r");
  if (!button || !result) return;
  button.addEventListener("click", function () {
    var code = button.getAttribute("data-bind-code") || "";
    button.disabled = true;
    fetch("/api/feishu-bindings/" + encodeURIComponent(code) + "/confirm", {
      method: "POST", credentials: "same-origin",
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        result.textContent = r.ok ? button.getAttribute("data-done") : (j.detail || "Failed");
        if (!r.ok) button.disabled = false;
      });
    }, function () {
      result.textContent = "Could not reach Rudder; try again.";
      button.disabled = false;
    });
  });
})();
