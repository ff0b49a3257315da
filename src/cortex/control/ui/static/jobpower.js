// The job page's power chart: its GPU draw over time (GET /ui/jobs/{id}/power.json, the control
// plane's bounded history: control/power_history.py), drawn by uPlot; gaps where it drew nothing.
"use strict";
(function () {
  var el = document.getElementById("power-chart");
  if (!el || typeof uPlot === "undefined") return;
  var chart = null;
  var api = { points: 0, measured: 0 };
  window.cortexJobPower = api;

  function draw(body) {
    var real = body.watts.filter(function (w) { return w !== null; });
    api.points = real.length;
    api.measured = body.measured.filter(function (m) { return m === true; }).length;
    api.step_s = body.step_s;
    var note = document.getElementById("power-empty");
    if (note) note.hidden = real.length > 0;
    if (!real.length) return;
    // Measured points in their own series, so a reader sees which figures are NVML's.
    var measured = body.watts.map(function (w, i) { return body.measured[i] ? w : null; });
    var modelled = body.watts.map(function (w, i) { return body.measured[i] === false ? w : null; });
    var data = [body.t, modelled, measured];
    if (chart) { chart.setData(data); el.dataset.drawn = String(api.points); return; }
    var axis = window.cortexAxis();
    chart = new uPlot({
      width: Math.min(960, el.clientWidth || 960),
      height: 200,
      scales: { x: { time: true }, w: { range: function (u, lo, hi) { return [0, Math.max(hi * 1.1, 1)]; } } },
      axes: [axis, Object.assign({ label: "GPU W", scale: "w" }, axis)],
      series: [{}, { label: "modelled W", scale: "w", stroke: "#5b9bd5", width: 1.5, paths: uPlot.paths.stepped({ align: 1 }) },
               { label: "measured W (NVML)", scale: "w", stroke: "#ef6c00", width: 1.5, paths: uPlot.paths.stepped({ align: 1 }) }],
    }, data, el);
    el.dataset.drawn = String(api.points);
  }

  api.refresh = window.cortexPoll("power", function () { return el.dataset.src; }, draw, 15000);
})();
