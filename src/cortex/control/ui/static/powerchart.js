// The power page's forecast (GET /ui/power/forecast.json): the site's facility draw as the
// running jobs end (the floor), and with the waiting jobs at their estimated starts held at the
// cap, against the cap in force, drawn by uPlot.
"use strict";
(function () {
  var el = document.getElementById("forecast-chart");
  var hours = document.getElementById("forecast-hours");
  if (!el || typeof uPlot === "undefined") return;
  var chart = null;
  var api = { points: 0, body: null };
  window.cortexPowerChart = api;

  function mw(w) { return (w / 1e6).toFixed(3) + " MW"; }

  function draw(body) {
    api.points = body.t.length;
    api.body = body;
    var cap = body.t.map(function () { return body.cap_w / 1e6; });
    var fac = body.facility_w.map(function (w) { return w / 1e6; });
    var ww = (body.with_waiting_w || body.facility_w).map(function (w) { return w / 1e6; });
    var data = [body.t, fac, ww, cap];
    var sum = document.getElementById("forecast-summary");
    if (sum) {
      sum.textContent = body.jobs + " running jobs in it (" + body.overdue + " past their estimate); " +
        body.waiting + " waiting jobs (" + body.waiting_gpus + " GPUs), " + body.waiting_in +
        " of them starting within the horizon by the estimator" +
        (body.capped ? ", the cap holding the draw at " + body.capped + " samples" : "") + "; now " +
        mw(body.facility_w[0]) + ", at the end " + mw(body.facility_w[body.t.length - 1]) +
        ", cap " + mw(body.cap_w) + ", outdoor " + body.temp_c.toFixed(1) + " °C";
    }
    if (chart) { chart.setData(data); el.dataset.drawn = String(api.points); return; }
    var axis = window.cortexAxis();
    chart = new uPlot({
      width: Math.min(960, el.clientWidth || 960),
      height: 240,
      scales: { x: { time: true }, mw: {} },
      axes: [axis, Object.assign({ label: "MW", scale: "mw" }, axis)],
      series: [{}, { label: "facility (forecast)", scale: "mw", stroke: "#5b9bd5", width: 1.5, paths: uPlot.paths.stepped({ align: 1 }) },
               { label: "with waiting jobs (cap applied)", scale: "mw", stroke: "#66bb6a", width: 1.5, dash: [3, 3], paths: uPlot.paths.stepped({ align: 1 }) },
               { label: "cap", scale: "mw", stroke: "#e53935", width: 1, dash: [6, 4] }],
    }, data, el);
    el.dataset.drawn = String(api.points);
  }

  api.refresh = window.cortexPoll("forecast", function () { return el.dataset.src + "?hours=" + encodeURIComponent(hours ? hours.value : "24"); }, draw, 30000);
  if (hours) hours.addEventListener("change", api.refresh);
})();

// The battery's modelled charge over the last day (GET /ui/power/battery.json), where the site
// declares one.
(function () {
  var el = document.getElementById("battery-chart");
  if (!el || typeof uPlot === "undefined") return;
  var chart = null;
  var api = { points: 0 };
  window.cortexBatteryChart = api;

  function draw(body) {
    api.points = body.t.length;
    var note = document.getElementById("battery-chart-empty");
    if (note) note.hidden = body.t.length > 0;
    if (!body.t.length) return;
    var data = [body.t, body.soc.map(function (x) { return x * 100; })];
    // At least an hour wide, ending at the newest point (one point alone has no span).
    var last = body.t[body.t.length - 1];
    var span = { min: Math.min(body.t[0], last - 3600), max: last };
    if (chart) {
      chart.setData(data, false);
      chart.setScale("x", span);
      el.dataset.drawn = String(api.points);
      return;
    }
    var axis = window.cortexAxis();
    chart = new uPlot({
      width: Math.min(960, el.clientWidth || 960),
      height: 160,
      scales: { x: { time: true }, pct: { range: [0, 100] } },
      axes: [axis, Object.assign({ label: "% charged", scale: "pct" }, axis)],
      series: [{}, { label: "state of charge %", scale: "pct", stroke: "#f9a825", width: 1.5 }],
    }, data, el);
    chart.setScale("x", span);
    el.dataset.drawn = String(api.points);
  }

  api.refresh = window.cortexPoll("battery", function () { return el.dataset.src; }, draw, 60000);
})();
