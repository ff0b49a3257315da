// Page-wide behaviour: a failed htmx request shows its message in the page's error banner
// (a 422 names the field) instead of failing silently.
"use strict";
document.addEventListener("htmx:responseError", function (ev) {
  var box = document.getElementById("error");
  if (!box) return;
  var xhr = ev.detail.xhr;
  var text = xhr.status + " " + xhr.statusText;
  try {
    var body = JSON.parse(xhr.responseText);
    if (Array.isArray(body.detail)) {
      text = body.detail.map(function (d) { return (d.loc || []).join(".") + ": " + d.msg; }).join("; ");
    } else if (body.detail) {
      text = String(body.detail);
    }
  } catch (e) { if (xhr.responseText) text = xhr.responseText.slice(0, 300); }
  box.textContent = text;
  box.hidden = false;
});
