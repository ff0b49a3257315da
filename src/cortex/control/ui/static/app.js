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

// What the pages' uPlot charts share: the axis style, and polling their JSON (a signed-out
// session goes back to the login page; any other failure shows in the error banner). Returns
// the refresh function, for the tests' and the page's own "now" hooks.
window.cortexAxis = function (extra) {
  return Object.assign({ stroke: "#9aa0aa", grid: { stroke: "#2a2f3a" }, ticks: { stroke: "#2a2f3a" } }, extra || {});
};
window.cortexPoll = function (what, url, draw, everyMs) {
  function refresh() {
    fetch(url(), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/ui/login?why=expired"; throw new Error("signed out"); }
        if (!r.ok) throw new Error(what + ": " + r.status);
        return r.json();
      })
      .then(draw)
      .catch(function (e) {
        var box = document.getElementById("error");
        if (box && e.message !== "signed out") { box.textContent = e.message; box.hidden = false; }
      });
  }
  refresh();
  setInterval(refresh, everyMs);
  return refresh;
};
