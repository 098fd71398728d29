// /ui: the series, a page at a time, with their stream counters; searchable by id.
"use strict";

(() => {
  const query = new URLSearchParams(location.search);
  const input = document.getElementById("search");
  input.value = query.get("search") || "";
  const table = document.getElementById("series-table");
  const rows = table.querySelector("tbody");
  const pages = document.getElementById("pages");
  let after = query.get("after") || "";
  let timer = null;

  function cell(value, className) {
    return UI.el("td", className ? { class: className } : {}, value);
  }

  function row(item) {
    const stream = item.stream;
    const link = UI.el("a", { href: UI.seriesPage(item.series_id) }, item.series_id);
    const tr = UI.el("tr", { "data-series": item.series_id },
      UI.el("td", { class: "id" }, link),
      cell(item.latest_version, "number"),
      cell(item.version_count, "number"),
      cell(UI.time(Date.parse(item.last_fit_at) / 1000)),
      cell(stream ? UI.time(stream.last_timestamp) : "no point yet", stream ? "" : "muted"),
      cell(stream ? UI.score(stream.last_score) : "–", "number"),
      cell(stream ? stream.anomalies_last_hour : "–", "number alarm"),
      cell(stream ? stream.anomalies_last_day : "–", "number"),
      cell(stream ? stream.incidents_last_day : "–", "number"));
    if (stream && stream.anomalies_last_hour > 0) tr.classList.add("alarm");
    return tr;
  }

  function pageLinks(page) {
    pages.replaceChildren();
    const search = input.value.trim();
    const link = (text, next) => {
      const params = new URLSearchParams();
      if (search) params.set("search", search);
      if (next) params.set("after", next);
      const href = `${UI.base}/ui${params.size ? "?" + params : ""}`;
      return UI.el("a", { href }, text);
    };
    if (after) pages.append(link("« first page", ""), " ");
    if (page.next_after) pages.append(link("next page »", page.next_after));
  }

  async function load() {
    const search = input.value.trim();
    try {
      const page = await UI.api("/series", { limit: 100, stream: "true", search, after });
      rows.replaceChildren(...page.series.map(row));
      table.hidden = page.series.length === 0;
      const shown = page.series.length;
      let text = `${page.total.toLocaleString("en-US")} series`;
      if (search) text += `; ${shown}${page.next_after ? "+" : ""} with ids holding “${search}”`;
      if (!shown) text += search || after ? " — none here" : " — fit one: POST /fit/{series_id}";
      UI.status(text);
      pageLinks(page);
      document.body.dataset.loaded = "1";
    } catch (error) {
      UI.failed(error, load);
    }
  }

  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
  });
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      after = "";
      const params = new URLSearchParams();
      if (input.value.trim()) params.set("search", input.value.trim());
      history.replaceState(null, "", `${UI.base}/ui${params.size ? "?" + params : ""}`);
      load();
    }, 250);
  });
  load();
  setInterval(load, 30000); // a read-only view for a wall screen: it keeps itself current
})();
