// Faena console: draws the Resumen graphs (throughput, failures, enqueue-to-start latency) with
// uPlot from /console/resumen/historial?rango=hora|dia|semana, and redraws them every 30 s.
// Labels come from the page (data-* attributes written from the console's translation table).
(function () {
  "use strict";
  var charts = [];
  var current = "hora";

  function size(el) {
    return { width: Math.max(280, el.clientWidth - 8), height: 200 };
  }

  function draw(box, data) {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    var d = box.dataset;
    var specs = [
      ["chart-throughput", d.titleThroughput, [[d.labelSucceeded, data.succeeded, "#2e7d32"]]],
      ["chart-failures", d.titleFailures, [[d.labelFailed, data.failed, "#c62828"], [d.labelDead, data.dead, "#6a1b9a"]]],
      ["chart-latency", d.titleLatency, [[d.labelP50, data.p50, "#1565c0"], [d.labelP95, data.p95, "#ef6c00"]]],
    ];
    specs.forEach(function (s) {
      var el = document.getElementById(s[0]);
      if (!el) return;
      el.innerHTML = "";
      var series = [{ label: d.labelTime }];
      var cols = [data.at];
      s[2].forEach(function (x) {
        // Points shown: a latency minute stands alone when the minutes around it had no job.
        series.push({ label: x[0], stroke: x[2], width: 2, points: { show: true, size: 4 } });
        cols.push(x[1]);
      });
      var sz = size(el);
      // Times in the business zone (the page's data-tz), like every time the console prints.
      var tz = d.tz;
      charts.push(new uPlot({ title: s[1], width: sz.width, height: sz.height, series: series,
        axes: [{}, { size: 60 }],
        tzDate: function (ts) { return tz ? uPlot.tzDate(new Date(ts * 1e3), tz) : new Date(ts * 1e3); } },
        cols, el));
    });
    box.dataset.drawn = String(data.at.length);
  }

  function load(range) {
    var box = document.getElementById("history");
    if (!box || typeof uPlot === "undefined") return;
    current = range || current;
    document.querySelectorAll(".ranges a").forEach(function (a) {
      a.classList.toggle("active", a.dataset.range === current);
    });
    fetch("/console/resumen/historial?rango=" + encodeURIComponent(current), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) { draw(box, data); })
      .catch(function (e) { box.dataset.error = String(e); });
  }

  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest(".ranges a");
    if (!a) return;
    ev.preventDefault();
    load(a.dataset.range);
  });
  document.addEventListener("DOMContentLoaded", function () {
    load("hora");
    setInterval(function () { load(); }, 30000);
  });
})();
