// The job page's progress chart: step, loss and samples/s over time in the job's current attempt (GET
// /ui/jobs/{id}/progress.json, from the tail of its metrics file), drawn by uPlot.
"use strict";
(function () {
  var el = document.getElementById("progress-chart");
  if (!el || typeof uPlot === "undefined") return;
  var chart = null;
  var api = { points: 0 };
  window.cortexJobChart = api;

  function draw(body) {
    api.points = body.t.length;
    var note = document.getElementById("progress-empty");
    if (note) note.hidden = body.t.length > 0;
    if (!body.t.length) return;
    var data = [body.t, body.loss, body.step, body.samples_per_s || body.t.map(function () { return null; })];
    if (chart) { chart.setData(data); el.dataset.drawn = String(api.points); return; }
    var axis = window.cortexAxis();
    chart = new uPlot({
      width: Math.min(960, el.clientWidth || 960),
      height: 240,
      scales: { x: { time: true }, loss: {}, step: {}, rate: {} },
      axes: [axis, Object.assign({ label: "loss", scale: "loss" }, axis),
             Object.assign({ label: "step", scale: "step", side: 1, grid: { show: false } }, axis),
             Object.assign({ label: "samples/s", scale: "rate", side: 1, grid: { show: false } }, axis)],
      series: [{}, { label: "loss", scale: "loss", stroke: "#f9a825", width: 1.5 },
               { label: "step", scale: "step", stroke: "#5b9bd5", width: 1.5 },
               { label: "samples/s", scale: "rate", stroke: "#66bb6a", width: 1.5 }],
    }, data, el);
    el.dataset.drawn = String(api.points);
  }

  api.refresh = window.cortexPoll("progress", function () { return el.dataset.src; }, draw, 15000);
})();
