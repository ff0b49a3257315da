// The quota page's history chart: GPUs each team held over the last day (GET
// /ui/quotas/history, from the store's allocation rows), drawn by uPlot.
"use strict";
(function () {
  var el = document.getElementById("quota-chart");
  if (!el || typeof uPlot === "undefined") return;
  var PALETTE = ["#5b9bd5", "#f9a825", "#66bb6a", "#ef5350", "#ab47bc", "#26c6da", "#ff7043", "#bdbdbd"];
  var chart = null;
  var api = { points: 0, series: [] };
  window.cortexQuotaChart = api;

  function draw(body) {
    var names = Object.keys(body.series);
    var data = [body.t].concat(names.map(function (n) { return body.series[n]; }));
    api.points = body.t.length;
    api.series = names;
    if (chart && chart.series.length === names.length + 1) { chart.setData(data); return; }
    if (chart) chart.destroy();
    var axis = window.cortexAxis();
    chart = new uPlot({
      width: Math.min(960, el.clientWidth || 960),
      height: 260,
      scales: { x: { time: true } },
      axes: [axis, Object.assign({ label: "GPUs held" }, axis)],
      series: [{}].concat(names.map(function (n, i) {
        return { label: n, stroke: PALETTE[i % PALETTE.length], width: 1.5 };
      })),
    }, data, el);
    el.dataset.drawn = "1";
  }

  window.cortexPoll("history", function () { return el.dataset.src; }, draw, 60000);
})();
