// What both dashboard pages share: calls to the API (with the API key, when one is
// needed), building elements (text always through textContent: series ids may hold any
// letter, markup included), formatting. Plain script, no build step.
"use strict";

const UI = (() => {
  const base = document.body.dataset.base || "";
  const KEY = "anomaly-api.key";

  // A key can come in the URL's fragment (#key=...), which browsers never send to a
  // server; it is moved to this tab's session storage and taken off the address bar.
  function keyFromFragment() {
    const found = /(?:^#|&)key=([^&]+)/.exec(location.hash);
    if (found) {
      sessionStorage.setItem(KEY, decodeURIComponent(found[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return Boolean(found);
  }
  keyFromFragment();
  // A new key pasted into the address bar of an open page: read again with it.
  window.addEventListener("hashchange", () => {
    if (keyFromFragment()) location.reload();
  });

  class KeyNeeded extends Error {}

  async function api(path, params) {
    const url = new URL(base + path, location.origin);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") {
        url.searchParams.set(name, String(value));
      }
    }
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = "Bearer " + key;
    const response = await fetch(url, { headers, credentials: "omit" });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (response.status === 401 || response.status === 403) {
      throw new KeyNeeded((body && body.detail) || "this service needs an API key");
    }
    if (!response.ok) {
      const detail = body && body.detail ? body.detail : response.statusText;
      throw new Error(`${response.status} from ${path}: ${detail}`);
    }
    return body;
  }

  function el(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "class") element.className = value;
      else element.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return element;
  }

  function status(text, isError) {
    const line = document.getElementById("status");
    line.textContent = text || "";
    line.classList.toggle("error", Boolean(isError));
  }

  // Asks for a key (kept for this tab only) when the service answered 401 or 403.
  function askForKey(message, retry) {
    status(message, true);
    if (document.getElementById("key-form")) return;
    const input = el("input", {
      id: "key", type: "password", autocomplete: "off", "aria-label": "API key",
      placeholder: "an API key with the read scope, then Enter",
    });
    const form = el("form", { id: "key-form" },
      el("label", { for: "key" }, "API key (kept in this tab only)"), input);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      form.remove();
      status("");
      retry();
    });
    document.querySelector("main").prepend(form);
  }

  function failed(error, retry) {
    if (error instanceof KeyNeeded) askForKey(error.message, retry);
    else status(String(error.message || error), true);
  }

  const pad = (n) => String(n).padStart(2, "0");
  function time(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const d = new Date(seconds * 1000);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }

  function num(value, digits) {
    if (value === null || value === undefined) return "–";
    const places = digits === undefined ? 4 : digits;
    return Number(value).toLocaleString("en-US", { maximumFractionDigits: places });
  }

  // Scores are 0 to 1, above 0.5 anomalous: three decimals, always.
  const score = (value) => (value === null || value === undefined ? "–" : value.toFixed(3));

  const seriesPage = (id) => `${base}/ui/series?id=${encodeURIComponent(id)}`;
  const seriesPath = (id) => `/series/${encodeURIComponent(id)}`;

  return { api, el, status, failed, time, num, score, base, seriesPage, seriesPath };
})();
