// The twin report's charts (control/ui/report.py inlines this file, uPlot and the data): the
// same uPlot as the live pages, over hours since the run began, with the run's cap events and
// heat waves shaded behind the lines.
"use strict";
(function () {
  var d = JSON.parse(document.getElementById("report-data").textContent);
  var SPAN = { "cap event": "rgba(229, 57, 53, 0.18)", "heat wave": "rgba(249, 168, 37, 0.18)" };
  var axis = { stroke: "#9aa0aa", grid: { stroke: "#2a2f3a" }, ticks: { stroke: "#2a2f3a" } };
  var drawn = 0;
  window.cortexReport = { charts: {} };

  function shade(u) {  // the spans, under the series (a draw-axes hook)
    var ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
    d.spans.forEach(function (s) {
      var a = u.valToPos(s.from_h, "x", true), b = u.valToPos(s.to_h, "x", true);
      ctx.fillStyle = SPAN[s.what] || "rgba(255, 255, 255, 0.1)";
      ctx.fillRect(a, top, Math.max(1, b - a), h);
    });
  }

  function chart(id, t, lines, ylabel) {
    var el = document.getElementById(id);
    if (!el || !t.length) { if (el) el.textContent = "no data"; return; }
    var data = [t].concat(lines.map(function (l) { return l.y; }));
    var u = new uPlot({
      width: Math.min(1000, el.clientWidth || 1000), height: 220,
      scales: { x: { time: false } },
      axes: [Object.assign({ label: "hours" }, axis), Object.assign({ label: ylabel }, axis)],
      series: [{ label: "hour" }].concat(lines.map(function (l) {
        return { label: l.label, stroke: l.color, width: 1.5, dash: l.dash };
      })),
      hooks: { drawAxes: [shade] },
    }, data, el);
    window.cortexReport.charts[id] = u;
    drawn += 1;
    document.body.dataset.charts = String(drawn);
  }

  chart("chart-util", d.t_h, [{ label: "allocated %", y: d.allocated_pct, color: "#5b9bd5" }], "allocated %");
  chart("chart-queue", d.t_h, [{ label: "queued jobs", y: d.queue_len, color: "#f9a825" }], "jobs");
  if (d.power_t_h.length) {
    var lines = [{ label: "facility MW", y: d.power_mw, color: "#66bb6a" }];
    if (d.cap_mw.length === d.power_mw.length) lines.push({ label: "cap MW", y: d.cap_mw, color: "#e53935", dash: [6, 4] });
    chart("chart-power", d.power_t_h, lines, "MW");
    if (d.soc_mwh.length === d.power_mw.length) {
      chart("chart-soc", d.power_t_h, [{ label: "battery MWh", y: d.soc_mwh, color: "#f9a825" }], "MWh");
    }
  } else {
    chart("chart-power", d.t_h, [{ label: "facility MW", y: d.facility_mw, color: "#66bb6a" }], "MW");
  }
})();
