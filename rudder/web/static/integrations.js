// Open the authorization link in a new tab right after Connect answers with it (not after the
// status polls). Browsers allow this shortly after the click; if one blocks it, the link and the
// QR code stay on the page.
document.addEventListener("htmx:afterSwap", function (event) {
  var config = event.detail && event.detail.requestConfig;
  if (!config || config.verb !== "post") return;
  var link = document.querySelector("#authorize-link[data-autoopen]");
  if (link) window.open(link.href, "_blank", "noopener");
});
