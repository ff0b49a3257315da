// The fleet heatmap: one canvas, one cell per node, colored by the state byte the server sends
// (/ui/heatmap.bin: one byte per node, in topology order). A node under the mouse is found by
// arithmetic (row * cols + col), never by searching drawn shapes. Hand-written: no charting
// library draws 50,000 cells and resolves a hover in constant time.
"use strict";
(function () {
  // RGB per state byte (views.STATE_NAMES): idle, partly used, full, down, cordoned.
  var COLORS = [[46, 125, 50], [249, 168, 37], [30, 136, 229], [229, 57, 53], [117, 117, 117]];
  var GAP = [17, 19, 24];
  var MAX_WIDTH = 960, REFRESH_MS = 5000;
  var canvas = document.getElementById("heatmap");
  if (!canvas) return;
  var tip = document.getElementById("heat-tip");
  var info = document.getElementById("heatmap-info");
  var api = { layout: null, states: null, meta: null, lastDrawMs: null, draws: 0, marked: null };
  window.cortexHeatmap = api;

  function packed(rgb) {  // ImageData as Uint32 on a little-endian machine: 0xAABBGGRR
    return (255 << 24 | rgb[2] << 16 | rgb[1] << 8 | rgb[0]) >>> 0;
  }
  var PACKED = COLORS.map(packed), PACKED_GAP = packed(GAP), PACKED_MARK = packed([255, 255, 255]);
  // "used" mode: the byte is the share of the node's GPUs in use, 0..200 (255: down), on a
  // ramp from dark slate (none) through teal (half) to yellow (all).
  var USED_MAX = 200, USED_DOWN = 255, STOPS = [[38, 50, 56], [0, 150, 136], [255, 235, 59]];
  var RAMP = [];
  for (var v = 0; v < 256; v++) {
    if (v === USED_DOWN) { RAMP.push(PACKED[3]); continue; }
    if (v > USED_MAX) { RAMP.push(PACKED_GAP); continue; }
    var f = v / USED_MAX * 2, lo = Math.min(1, Math.floor(f)), w = f - lo;
    RAMP.push(packed([0, 1, 2].map(function (ch) {
      return Math.round(STOPS[lo][ch] + (STOPS[lo + 1][ch] - STOPS[lo][ch]) * w);
    })));
  }
  // "power" mode: the byte is the node's modelled GPU draw as a share of TDP, same scale, on
  // a ramp from dark indigo (idle) through purple to orange (at TDP).
  var PSTOPS = [[26, 35, 126], [156, 39, 176], [255, 112, 67]];
  var POWER_RAMP = RAMP.map(function (c, v) {
    if (v > USED_MAX) return c;
    var f = v / USED_MAX * 2, lo = Math.min(1, Math.floor(f)), w = f - lo;
    return packed([0, 1, 2].map(function (ch) {
      return Math.round(PSTOPS[lo][ch] + (PSTOPS[lo + 1][ch] - PSTOPS[lo][ch]) * w);
    }));
  });
  // "cooling" mode: the byte is the node's hall's modelled heat as a share of what its cooling
  // rejects at the outdoor temperature, same scale, from blue through sand to red; 254: the
  // hall has no rated cooling (ui/heat_view.py).
  var CSTOPS = [[49, 54, 149], [254, 224, 144], [215, 48, 39]], NO_COOLING = 254;
  var COOL_RAMP = RAMP.map(function (c, v) {
    if (v === NO_COOLING) return packed([66, 66, 66]);
    if (v > USED_MAX) return c;
    var f = v / USED_MAX * 2, lo = Math.min(1, Math.floor(f)), w = f - lo;
    return packed([0, 1, 2].map(function (ch) {
      return Math.round(CSTOPS[lo][ch] + (CSTOPS[lo + 1][ch] - CSTOPS[lo][ch]) * w);
    }));
  });
  // "temp" mode: the byte is the node's GPU temperature in whole degrees C (measured through
  // NVML where the server reads it, else modelled from its draw: control/node_temps.py), on
  // the cooling ramp from TEMP_LO (blue) through sand to TEMP_HI (red) and beyond.
  var TEMP_LO = 25, TEMP_HI = 85;
  var TEMP_RAMP = RAMP.map(function (c, v) {
    if (v > USED_MAX) return c;
    var f = Math.min(Math.max((v - TEMP_LO) / (TEMP_HI - TEMP_LO), 0), 1) * 2;
    var lo = Math.min(1, Math.floor(f)), w = f - lo;
    return packed([0, 1, 2].map(function (ch) {
      return Math.round(CSTOPS[lo][ch] + (CSTOPS[lo + 1][ch] - CSTOPS[lo][ch]) * w);
    }));
  });
  var TABLES = { used: RAMP, power: POWER_RAMP, cooling: COOL_RAMP, temp: TEMP_RAMP };
  var select = document.getElementById("heat-color");
  api.mode = select ? select.value : "state";
  var grouping = document.getElementById("heat-layout");
  api.how = grouping ? grouping.value : "nodes";
  // Nodes to outline (a job's placement on its page): the ring of the cell, white; the middle
  // keeps the state's color.
  var marked = (canvas.dataset.highlight || "").split(",").filter(function (x) { return x !== ""; })
    .map(Number).filter(function (x) { return x >= 0; });
  api.marked = marked;

  // Two layouts, each a pair of inverse functions in cell units: origin(i) gives node i's
  // cell, at(col, row) the node in a cell (-1: none). "nodes": row-major over the topology
  // order. "pods": each pod a block of bw x bh cells, blocks in rows with a one-cell gap.
  function flat(n) {
    var cols = Math.max(1, Math.min(200, Math.ceil(Math.sqrt(n * 2.5)), n));
    var rows = Math.max(1, Math.ceil(n / cols));
    return {
      n: n, cols: cols, rows: rows,
      origin: function (i) { return [i % cols, Math.floor(i / cols)]; },
      at: function (col, row) {
        var i = row * cols + col;
        return col >= 0 && col < cols && row >= 0 && i < n ? i : -1;
      },
    };
  }

  function pods(n, starts) {
    var P = starts.length, size = [], biggest = 1;
    for (var p = 0; p < P; p++) {
      size.push((p + 1 < P ? starts[p + 1] : n) - starts[p]);
      biggest = Math.max(biggest, size[p]);
    }
    var bw = Math.max(1, Math.ceil(Math.sqrt(biggest * 2))), bh = Math.ceil(biggest / bw);
    var perRow = Math.max(1, Math.min(P, Math.floor((200 + 1) / (bw + 1))));
    var cols = perRow * (bw + 1) - 1, rows = Math.ceil(P / perRow) * (bh + 1) - 1;
    var podOf = new Int32Array(n);
    for (var q = 0; q < P; q++) podOf.fill(q, starts[q], starts[q] + size[q]);
    return {
      n: n, cols: cols, rows: rows,
      origin: function (i) {
        var p = podOf[i], o = i - starts[p];
        return [(p % perRow) * (bw + 1) + o % bw, Math.floor(p / perRow) * (bh + 1) + Math.floor(o / bw)];
      },
      at: function (col, row) {
        if (col < 0 || row < 0 || col >= cols) return -1;
        var ox = col % (bw + 1), oy = row % (bh + 1);
        if (ox === bw || oy === bh) return -1;  // the gap between pods
        var p = Math.floor(row / (bh + 1)) * perRow + Math.floor(col / (bw + 1)), o = oy * bw + ox;
        return p < P && o < size[p] ? starts[p] + o : -1;
      },
    };
  }

  function layout(meta, how) {
    // Halls are blocks like pods, one per hall (the topology order keeps a hall's nodes together).
    var starts = { pods: meta.pod_start, halls: meta.hall_start, racks: meta.rack_start }[how] || null;
    var L = starts && starts.length > 1 ? pods(meta.nodes, starts) : flat(meta.nodes);
    L.how = how;
    L.cell = Math.max(4, Math.min(40, Math.floor(MAX_WIDTH / L.cols)));
    L.width = L.cols * L.cell; L.height = L.rows * L.cell;
    return L;
  }
  // Cells are in the meta's order (by hall, pod, rack); `order` (position -> node index) comes
  // only when that is not the node order (a node that joined later, into an earlier pod).
  function nodeOf(pos) { var o = api.meta && api.meta.order; return o ? o[pos] : pos; }
  function posOf(node) {
    var o = api.meta && api.meta.order;
    if (!o) return node;
    if (!api.posOf || api.posOf.length !== o.length) {
      api.posOf = new Int32Array(o.length);
      for (var p = 0; p < o.length; p++) api.posOf[o[p]] = p;
    }
    return api.posOf[node];
  }
  api.nodeOf = nodeOf;
  api.origin = function (i) {  // node i's cell's top-left pixel (tests, benchmarks)
    var o = api.layout.origin(posOf(i));
    return [o[0] * api.layout.cell, o[1] * api.layout.cell];
  };

  function draw() {
    var t0 = performance.now();
    var L = api.layout, s = api.states;
    if (canvas.width !== L.width || canvas.height !== L.height) {
      canvas.width = L.width; canvas.height = L.height;
    }
    var ctx = canvas.getContext("2d", { willReadFrequently: true });
    var img = ctx.createImageData(L.width, L.height);
    var px = new Uint32Array(img.data.buffer);
    px.fill(PACKED_GAP);
    var c = L.cell, inner = c - 1, W = L.width;
    var table = TABLES[api.dataMode] || PACKED;
    for (var i = 0; i < L.n; i++) {
      var color = table[s[i]] !== undefined ? table[s[i]] : PACKED_GAP;
      var o = L.origin(i), x0 = o[0] * c, y0 = o[1] * c;
      for (var y = 0; y < inner; y++) {
        var row = (y0 + y) * W + x0;
        px.fill(color, row, row + inner);
      }
    }
    for (var m = 0; m < marked.length; m++) {
      var k = marked[m];
      if (k >= L.n) continue;
      var mo = L.origin(posOf(k)), mx = mo[0] * c, my = mo[1] * c;
      px.fill(PACKED_MARK, my * W + mx, my * W + mx + inner);
      px.fill(PACKED_MARK, (my + inner - 1) * W + mx, (my + inner - 1) * W + mx + inner);
      for (var yy = 1; yy < inner - 1; yy++) {
        px[(my + yy) * W + mx] = PACKED_MARK;
        px[(my + yy) * W + mx + inner - 1] = PACKED_MARK;
      }
    }
    ctx.putImageData(img, 0, 0);
    api.lastDrawMs = performance.now() - t0;
    api.draws += 1;
    canvas.dataset.drawn = String(api.draws);
    if (api.draws === 1 && performance.mark) performance.mark("heatmap-drawn");
    return api.lastDrawMs;
  }
  api.redraw = draw;

  function pod(i, starts) {  // the last start <= i (pod_start, hall_start: sorted): bisection
    var a = starts || api.meta.pod_start, lo = 0, hi = a.length - 1;
    while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (a[mid] <= i) lo = mid; else hi = mid - 1; }
    return lo;
  }

  function nodeAt(ev) {
    var L = api.layout;
    if (!L) return -1;
    var r = canvas.getBoundingClientRect();
    var x = (ev.clientX - r.left) * canvas.width / r.width;
    var y = (ev.clientY - r.top) * canvas.height / r.height;
    return L.at(Math.floor(x / L.cell), Math.floor(y / L.cell));
  }
  api.nodeAt = nodeAt;

  canvas.addEventListener("mousemove", function (ev) {
    var i = nodeAt(ev);
    if (i < 0) { tip.hidden = true; return; }
    var b = api.states[i];
    var share = Math.round(b / USED_MAX * 100);
    var what = b === USED_DOWN && api.dataMode !== "state" ? "down"
      : api.dataMode === "used" ? share + "% of GPUs in use"
      : api.dataMode === "power" ? share + "% of TDP drawn (modelled)"
      : api.dataMode === "cooling" ? (b === NO_COOLING ? "hall has no rated cooling"
        : "hall cooling at " + share + "% of capacity at " + api.outdoorC + " °C outdoor (modelled)")
      : api.dataMode === "temp" ? "GPUs " + b + " °C" + (nodeOf(i) < api.tempMeasured ? " (measured, NVML)" : " (modelled from draw)")
      : api.meta.states[b];
    var hall = api.meta.halls ? api.meta.halls[pod(i, api.meta.hall_start)] : "";
    tip.textContent = "node #" + nodeOf(i) + " · " + hall + " · pod " + pod(i) + " · " + what;
    tip.style.left = (ev.offsetX + 12) + "px";
    tip.style.top = (ev.offsetY + 12) + "px";
    tip.hidden = false;
  });
  canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
  canvas.addEventListener("click", function (ev) {
    var i = nodeAt(ev);
    if (i >= 0) htmx.ajax("GET", "/ui/fragments/node?index=" + nodeOf(i), { target: "#node-detail", swap: "innerHTML" });
  });

  function get(url, kind) {
    return fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401) { window.location.href = "/ui/login?why=expired"; throw new Error("signed out"); }
      if (!r.ok) throw new Error(url + ": " + r.status);
      var m = r.headers.get("X-Cortex-Temp-Measured");
      if (m !== null) api.tempMeasured = Number(m);
      var c = r.headers.get("X-Cortex-Outdoor-C");
      if (c !== null) {
        api.outdoorC = c;
        var out = document.getElementById("outdoor-c");
        if (out) out.textContent = c;
      }
      return kind === "json" ? r.json() : r.arrayBuffer();
    });
  }

  function refresh() {
    var needMeta = !api.meta;
    var mode = api.mode;  // the bytes are read in the mode they were asked in
    var bin = canvas.dataset.bin + "?color=" + mode;
    return Promise.all([needMeta ? get(canvas.dataset.meta, "json") : api.meta, get(bin, "bin")])
      .then(function (got) {
        var meta = got[0], states = new Uint8Array(got[1]);
        if (states.length !== meta.nodes) { api.meta = null; return refresh(); }  // fleet changed
        if (mode !== api.mode) return;  // the mode changed meanwhile: its own refresh draws
        api.meta = meta; api.states = states; api.dataMode = mode;
        if (!api.layout || api.layout.n !== meta.nodes || api.layout.how !== api.how) {
          api.layout = layout(meta, api.how);
        }
        draw();
        if (info) info.textContent = meta.nodes.toLocaleString() + " nodes";
      })
      .catch(function (e) {
        var box = document.getElementById("error");
        if (box && String(e.message) !== "signed out") { box.textContent = "heatmap: " + e.message; box.hidden = false; }
      });
  }
  api.refresh = refresh;
  if (grouping) {
    grouping.addEventListener("change", function () {
      api.how = grouping.value;
      if (api.meta) { api.layout = layout(api.meta, api.how); draw(); }
    });
  }
  if (select) {
    select.addEventListener("change", function () {
      api.mode = select.value;
      document.querySelectorAll(".legend[data-mode]").forEach(function (el) {
        el.hidden = el.dataset.mode !== api.mode;
      });
      refresh();
    });
  }
  api.ready = refresh();
  setInterval(refresh, REFRESH_MS);
})();
