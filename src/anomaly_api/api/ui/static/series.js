// /ui/series?id=...: one series' scored history as an interactive chart (uPlot), its
// anomalies and its versions, read from GET /series/{id} and GET /series/{id}/points.
"use strict";

(() => {
  const query = new URLSearchParams(location.search);
  const id = query.get("id");
  const RANGES = { hour: 3600, day: 86400, week: 7 * 86400, month: 30 * 86400, all: null };
  const range = Object.hasOwn(RANGES, query.get("range")) ? query.get("range") : "day";
  const PAGE = 10000;
  const MOST_POINTS = 50000; // a chart of more says no more, and costs the browser seconds
  const COLORS = {
    value: "#8172b3", expected: "#1b7a1b", band: "rgba(46, 160, 44, 0.75)",
    fill: "rgba(46, 160, 44, 0.13)", score: "rgba(255, 127, 14, 0.55)", alarm: "#d62728",
  };
  let chart = null;

  function rangeLinks() {
    const line = document.getElementById("ranges");
    line.replaceChildren("Up to the newest point: ");
    for (const name of Object.keys(RANGES)) {
      const params = new URLSearchParams({ id, range: name });
      const attributes = { href: `${UI.base}/ui/series?${params}` };
      if (name === range) {
        attributes.class = "current";
        attributes["aria-current"] = "page";
      }
      line.append(UI.el("a", attributes, name === "all" ? "everything kept" : `last ${name}`));
    }
  }

  async function history(last) {
    const span = RANGES[range];
    const from = span === null ? undefined : last - span + 1;
    const points = [];
    let after;
    for (;;) {
      const page = await UI.api(`${UI.seriesPath(id)}/points`, { from, after, limit: PAGE });
      points.push(...page.points);
      if (page.next_after === null || points.length >= MOST_POINTS) {
        return { points, cut: page.next_after !== null };
      }
      after = page.next_after;
    }
  }

  function draw(points) {
    const holder = document.getElementById("chart");
    holder.replaceChildren();
    if (chart) chart.destroy();
    const time = points.map((p) => p.timestamp);
    const data = [
      time,
      points.map((p) => p.value),
      points.map((p) => p.expected),
      points.map((p) => p.lower),
      points.map((p) => p.upper),
      points.map((p) => p.score),
      points.map((p) => (p.incident === "new" ? p.value : null)),
      points.map((p) => (p.anomaly ? p.value : null)),
    ];
    const markers = (size, fill, stroke, width) => ({ show: true, size, fill, stroke, width });
    const options = {
      width: Math.max(holder.clientWidth, 320),
      height: 420,
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"),
      // The score (0 to 1) keeps to the bottom third, under the data.
      scales: { x: { time: true }, score: { range: [0, 3] } },
      axes: [
        {},
        { label: "value", size: 70 },
        {
          scale: "score", side: 1, label: "score", grid: { show: false },
          splits: () => [0, 0.5, 1], values: (u, splits) => splits.map((s) => s.toFixed(1)),
        },
      ],
      series: [
        { label: "time (UTC)", value: (u, seconds) => UI.time(seconds) },
        { label: "value", stroke: COLORS.value, width: 1.2 },
        { label: "expected", stroke: COLORS.expected, width: 1.5 },
        { label: "band low", stroke: COLORS.band, width: 1, dash: [4, 4] },
        { label: "band high", stroke: COLORS.band, width: 1, dash: [4, 4] },
        {
          label: "score", scale: "score", stroke: COLORS.score, width: 1,
          value: (u, score) => UI.score(score),
        },
        // Drawn last, on top of everything: the rings, then the anomalies' dots.
        {
          label: "incident opened", stroke: "#000", paths: () => null,
          points: markers(17, "rgba(0, 0, 0, 0)", "#000", 2),
        },
        {
          label: "anomaly", stroke: COLORS.alarm, fill: COLORS.alarm, paths: () => null,
          points: markers(9, COLORS.alarm, COLORS.alarm, 1),
        },
      ],
      bands: [{ series: [4, 3], fill: COLORS.fill }],
      cursor: { drag: { x: true, y: false } },
    };
    chart = new uPlot(options, data, holder);
    window.dashboard = { chart, points }; // what the browser tests read back
    document.getElementById("chart-hint").hidden = false;
  }

  function anomalies(points) {
    const table = document.getElementById("anomalies-table");
    const flagged = points.filter((p) => p.anomaly).reverse();
    const shown = flagged.slice(0, 500);
    table.querySelector("tbody").replaceChildren(...shown.map((p) => UI.el("tr",
      { "data-timestamp": p.timestamp },
      UI.el("td", {}, UI.time(p.timestamp)),
      UI.el("td", { class: "number" }, UI.num(p.value)),
      UI.el("td", { class: "number" }, UI.num(p.expected)),
      UI.el("td", { class: "number" }, `${UI.num(p.lower)} … ${UI.num(p.upper)}`),
      UI.el("td", { class: "number" }, UI.score(p.score)),
      UI.el("td", {}, p.incident || ""),
      UI.el("td", { class: "number" }, p.model_version))));
    table.hidden = shown.length === 0;
    const note = document.getElementById("anomalies-note");
    note.textContent = flagged.length === 0 ? "None in this range." :
      flagged.length > shown.length ? `The newest ${shown.length} of ${flagged.length}.` : "";
  }

  function versions(detail) {
    const table = document.getElementById("versions-table");
    const newest = [...detail.versions].reverse().slice(0, 100);
    table.querySelector("tbody").replaceChildren(...newest.map((v) => UI.el("tr", {},
      UI.el("td", { class: "number" }, v.version + (v.version === detail.latest_version ? " (latest)" : "")),
      UI.el("td", {}, v.detector),
      UI.el("td", { class: "params" }, JSON.stringify(v.params)),
      UI.el("td", {}, v.trigger),
      UI.el("td", {}, UI.time(Date.parse(v.created_at) / 1000)),
      UI.el("td", {}, v.created_by || "–"),
      UI.el("td", { class: "number" }, `${v.points_used.toLocaleString("en-US")} points`))));
    table.hidden = newest.length === 0;
  }

  async function load() {
    if (!id) {
      UI.status("No series chosen: open one from the series list.", true);
      return;
    }
    document.title = `${id} · anomaly-api`;
    document.getElementById("title").textContent = id;
    rangeLinks();
    try {
      const detail = await UI.api(UI.seriesPath(id));
      versions(detail);
      const stream = detail.stream;
      const summary = document.getElementById("summary");
      if (!stream || stream.last_timestamp === null || stream.points_observed === 0) {
        summary.textContent = `Latest version ${detail.latest_version}. No point scored yet.`;
        UI.status("Nothing to chart: send points with POST /predict/{series_id}.");
        document.body.dataset.loaded = "1";
        return;
      }
      summary.textContent = `Latest version ${detail.latest_version} · newest point ` +
        `${UI.time(stream.last_timestamp)} UTC, score ${UI.score(stream.last_score)} · ` +
        `anomalies: ${stream.anomalies_last_hour} in its last hour, ` +
        `${stream.anomalies_last_day} in its last day (${stream.incidents_last_day} incidents)`;
      UI.status("Loading the points…");
      const { points, cut } = await history(stream.last_timestamp);
      UI.status(cut ? `Showing the first ${points.length.toLocaleString("en-US")} points of ` +
        "the range: choose a shorter one to see the rest." :
        `${points.length.toLocaleString("en-US")} points scored in this range.`);
      if (points.length) draw(points);
      anomalies(points);
      document.body.dataset.loaded = "1";
    } catch (error) {
      UI.failed(error, load);
    }
  }

  window.addEventListener("resize", () => {
    const holder = document.getElementById("chart");
    if (chart) chart.setSize({ width: Math.max(holder.clientWidth, 320), height: 420 });
  });
  load();
})();
