// The job timeline (Gantt) on one canvas: a row per job, lanes per team, bars for runs, ticks
// for preemptions (white) and failures (red). Hand-written: a charting library draws no
// thousand-row Gantt in a few milliseconds. The row under the mouse is found by bisection in
// the rows' tops.
"use strict";
(function () {
  var canvas = document.getElementById("timeline");
  if (!canvas) return;
  var tip = document.getElementById("timeline-tip");
  var info = document.getElementById("timeline-info");
  var hoursSel = document.getElementById("timeline-hours");
  var bySel = document.getElementById("timeline-by");
  var PALETTE = ["#5b9bd5", "#f9a825", "#66bb6a", "#ab47bc", "#26c6da", "#ff7043", "#bdbdbd", "#8d6e63"];
  var LABEL_W = 120, LANE_GAP = 14, MAX_H = 2000;
  var api = { data: null, rows: [], draws: 0 };
  window.cortexTimeline = api;

  function x(t) {
    var d = api.data, w = canvas.width - LABEL_W;
    return LABEL_W + Math.max(0, Math.min(1, (t - d.since) / (d.now - d.since))) * w;
  }
  api.x = x;

  function laneOf(j) {  // lanes per team, or per pod (?by=pod; the server orders the jobs so)
    if (api.data.by !== "pod") return j.team;
    return j.pod === null || j.pod === undefined ? "no pod" : "pod " + j.pod;
  }
  api.laneOf = laneOf;

  function draw() {
    var d = api.data, jobs = d.jobs, lanes = {};
    jobs.forEach(function (j) { lanes[laneOf(j)] = 1; });
    var rowh = Math.max(3, Math.min(14, Math.floor((MAX_H - LANE_GAP * Object.keys(lanes).length) / Math.max(1, jobs.length))));
    var rows = [], y = 0, lane = null;
    for (var i = 0; i < jobs.length; i++) {
      if (laneOf(jobs[i]) !== lane) { lane = laneOf(jobs[i]); y += LANE_GAP; }
      rows.push({ top: y, h: rowh, job: jobs[i] });
      y += rowh;
    }
    api.rows = rows;
    canvas.width = Math.max(400, Math.min(1200, canvas.parentElement.clientWidth || 1200));
    canvas.height = Math.max(40, y + 4);
    var ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.fillStyle = "#111318";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.font = "11px 'Liberation Sans', Arial, sans-serif";
    lane = null;
    for (var k = 0; k < rows.length; k++) {
      var r = rows[k], j = r.job, color = PALETTE[d.teams.indexOf(j.team) % PALETTE.length];
      if (laneOf(j) !== lane) {
        lane = laneOf(j);
        ctx.fillStyle = "#9aa0aa";
        ctx.fillText(lane, 4, r.top - 3);
      }
      ctx.fillStyle = color;
      for (var n = 0; n < j.runs.length; n++) {
        // Whole pixels: a run shorter than one still shows, in its own color, unblended.
        var a = Math.floor(x(j.runs[n][0])), b = Math.ceil(x(j.runs[n][1] === null ? d.now : j.runs[n][1]));
        ctx.fillRect(a, r.top, Math.max(1, b - a), r.h - 1);
      }
      for (var m = 0; m < j.marks.length; m++) {
        ctx.fillStyle = j.marks[m][1] === "failed" ? "#e53935" : "#ffffff";
        ctx.fillRect(Math.floor(x(j.marks[m][0])) - 1, r.top, 2, r.h - 1);
      }
    }
    api.draws += 1;
    canvas.dataset.drawn = String(api.draws);
    if (info) info.textContent = jobs.length + " jobs";
  }

  function rowAt(ev) {
    var rect = canvas.getBoundingClientRect(), y = (ev.clientY - rect.top) * canvas.height / rect.height;
    var rows = api.rows, lo = 0, hi = rows.length - 1;
    if (!rows.length || y < rows[0].top) return null;
    while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (rows[mid].top <= y) lo = mid; else hi = mid - 1; }
    return y < rows[lo].top + rows[lo].h ? rows[lo] : null;
  }

  canvas.addEventListener("mousemove", function (ev) {
    var r = rowAt(ev);
    if (!r) { tip.hidden = true; return; }
    var j = r.job;
    tip.textContent = "job " + j.id + " · " + j.name + " · " + j.team + " · " + j.gpus + " GPUs · " +
      j.runs.length + " runs" + (j.marks.length ? " · " + j.marks.length + " marks" : "");
    tip.style.left = (ev.offsetX + 12) + "px";
    tip.style.top = (ev.offsetY + 12) + "px";
    tip.hidden = false;
  });
  canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
  canvas.addEventListener("click", function (ev) {
    var r = rowAt(ev);
    if (r) window.location.href = "/ui/jobs/" + r.job.id;
  });

  function refresh() {
    var hours = hoursSel ? hoursSel.value : "6";
    var by = bySel ? bySel.value : "team";
    return fetch(canvas.dataset.src + "?hours=" + hours + "&by=" + by, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/ui/login?why=expired"; throw new Error("signed out"); }
        if (!r.ok) throw new Error("timeline: " + r.status);
        return r.json();
      })
      .then(function (d) { api.data = d; draw(); })
      .catch(function (e) {
        var box = document.getElementById("error");
        if (box && e.message !== "signed out") { box.textContent = e.message; box.hidden = false; }
      });
  }
  api.refresh = refresh;
  if (hoursSel) hoursSel.addEventListener("change", refresh);
  if (bySel) bySel.addEventListener("change", refresh);
  refresh();
  setInterval(refresh, 30000);
})();
