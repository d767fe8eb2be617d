// printerd's page: live receipts (SSE), search, printer state switches, health.
// Plain browser JavaScript, no build step and nothing from the network but this printerd.
"use strict";

const FEED_SIZE = 50;      // receipts kept on the live page
const PAGE_SIZE = 20;      // search results per page
const RECONNECT_MS = 3000; // after the stream was refused or closed for good

const $ = (selector, root = document) => root.querySelector(selector);

class LoginNeeded extends Error {}

// -- talking to the API ----------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  // The session cookie (HttpOnly) goes along by itself; the token never appears in a URL.
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  if (response.status === 401) {
    showLogin();
    throw new LoginNeeded(path);
  }
  return response;
}

async function apiJson(path, options) {
  const response = await api(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

// Every user action and background refresh goes through here: a failure (printerd restarting,
// the network gone) shows as a message on the page, never as an unhandled error.
async function guard(action) {
  try {
    const result = await action();
    $("#page-error").hidden = true;
    return result;
  } catch (error) {
    if (error instanceof LoginNeeded) return undefined;
    // fetch() rejects with a TypeError when there is no answer at all; API errors carry
    // printerd's own message.
    $("#page-error").textContent = error instanceof TypeError
      ? `printerd did not answer (${error.message}): is it running?` : error.message;
    $("#page-error").hidden = false;
    return undefined;
  }
}

function formatTime(iso) {
  return new Date(iso).toLocaleString();
}

function formatBytes(count) {
  return count < 1024 ? `${count} B` : `${(count / 1024).toFixed(1)} KiB`;
}

// -- login -----------------------------------------------------------------------------------

function showLogin() {
  $("#login").hidden = false;
  for (const view of document.querySelectorAll("[data-view]")) view.hidden = true;
  setConnection("offline");
  if (stream) stream.close();
  stream = null;
}

async function logIn(event) {
  event.preventDefault();
  const token = $("#token").value;
  const response = await fetch("/api/session", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }),
  });
  $("#token").value = "";
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    $("#login-error").textContent = body.error || `refused (${response.status})`;
    return;
  }
  $("#login-error").textContent = "";
  $("#login").hidden = true;
  started = false;
  start();
}

// -- a receipt as on paper -------------------------------------------------------------------

// The HTML rendering goes into a shadow root: its styles stay inside, the page's stay out.
// DOMParser never runs scripts, and the page's Content-Security-Policy allows none inline.
async function paper(receiptId) {
  const host = element("div", { class: "paper" });
  const shadow = host.attachShadow({ mode: "open" });
  try {
    const response = await api(`/api/receipts/${receiptId}.html`);
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const style = page.querySelector("style");
    const receipt = page.querySelector(".receipt");
    if (style) shadow.append(style);
    if (receipt) shadow.append(receipt);
  } catch (error) {
    if (!(error instanceof LoginNeeded)) shadow.append(`rendering failed: ${error.message}`);
  }
  return host;
}

function receiptHeader(receipt) {
  return element("p", { class: "meta" },
    element("a", { href: `#receipt/${receipt.id}`, text: `#${receipt.id}` }),
    ` · ${receipt.printer} · `,
    element("time", { datetime: receipt.received_at, text: formatTime(receipt.received_at) }),
    ` · ${formatBytes(receipt.bytes)}`,
    receipt.truncated ? " · truncated" : "");
}

// -- live feed -------------------------------------------------------------------------------

let stream = null;
let lastId = 0;

function setConnection(state) {
  const badge = $("#connection");
  badge.className = `conn ${state}`;
  badge.textContent = state;
}

function addToFeed(receipt) {
  if (receipt.id <= lastId) return; // already shown (a replay after reconnecting)
  lastId = receipt.id;
  const card = element("article", { class: "card", "data-receipt-id": receipt.id },
    receiptHeader(receipt));
  const feed = $("#feed");
  feed.prepend(card);
  while (feed.children.length > FEED_SIZE) feed.lastElementChild.remove();
  $("#live-empty").hidden = true;
  paper(receipt.id).then((rendering) => card.append(rendering));
}

function connect() {
  if (stream) stream.close();
  // The browser resumes by itself with Last-Event-ID; `after` covers a fresh connection.
  stream = new EventSource(`/api/stream?after=${lastId}`);
  setConnection("connecting");
  stream.onopen = () => setConnection("live");
  stream.addEventListener("receipt", (event) => addToFeed(JSON.parse(event.data)));
  stream.onerror = () => {
    if (stream.readyState === EventSource.CLOSED) {
      // Refused (401, 503 at the subscriber limit): check the login, then try again later.
      setConnection("offline");
      setTimeout(() => guard(async () => { await apiJson("/api/recent?limit=1"); connect(); }),
                 RECONNECT_MS);
    } else {
      setConnection("reconnecting");
    }
  };
}

async function startLive() {
  const recent = await apiJson(`/api/recent?limit=${PAGE_SIZE}`);
  for (const receipt of recent.receipts.slice().reverse()) addToFeed(receipt);
  connect();
}

// -- search ----------------------------------------------------------------------------------

let nextPage = null;

function searchUrl() {
  const form = new FormData($("#search-form"));
  const query = new URLSearchParams({ limit: PAGE_SIZE });
  for (const name of ["q", "printer"]) {
    if (form.get(name)) query.set(name, form.get(name));
  }
  // datetime-local is local time: the API takes ISO 8601 instants.
  for (const name of ["since", "until"]) {
    if (form.get(name)) query.set(name, new Date(form.get(name)).toISOString());
  }
  return `/api/receipts?${query}`;
}

async function showResults(url, append) {
  const results = $("#search-results");
  if (!append) results.replaceChildren();
  $("#search-status").textContent = "Searching…";
  try {
    const page = await apiJson(url);
    for (const receipt of page.receipts) {
      const firstLines = receipt.text.split("\n").slice(0, 3).join(" / ");
      results.append(element("li", { class: "result", "data-receipt-id": receipt.id },
        receiptHeader(receipt), element("p", { class: "excerpt", text: firstLines })));
    }
    nextPage = page.next;
    $("#search-more").hidden = !nextPage;
    const count = results.children.length;
    $("#search-status").textContent = count ? `${count} receipt${count > 1 ? "s" : ""} shown`
                                            : "No receipt matches.";
  } catch (error) {
    if (!(error instanceof LoginNeeded)) $("#search-status").textContent = error.message;
  }
}

async function loadPrinterChoices() {
  const select = $("#search-printer");
  const { printers } = await apiJson("/api/printers");
  select.replaceChildren(element("option", { value: "", text: "any" }),
    ...printers.map((p) => element("option", { value: p.name, text: p.name })));
}

// -- one receipt -----------------------------------------------------------------------------

async function showReceipt(id) {
  const receipt = await apiJson(`/api/receipts/${id}`);
  $("#receipt-title").textContent = `Receipt #${receipt.id}`;
  $("#receipt-meta").replaceChildren(receiptHeader(receipt));
  $("#receipt-raw").href = `/api/receipts/${id}/raw`;
  $("#receipt-txt").href = `/api/receipts/${id}.txt`;
  $("#receipt-html").href = `/api/receipts/${id}.html`;
  $("#receipt-png").href = `/api/receipts/${id}.png`;
  $("#receipt-image").src = `/api/receipts/${id}.png`;
  $("#receipt-paper").replaceChildren(await paper(id));
  const text = await api(`/api/receipts/${id}.txt`);
  $("#receipt-text").textContent = await text.text();
}

// -- printers --------------------------------------------------------------------------------

function stateSwitch(printer, field, label, checked) {
  const input = element("input", { type: "checkbox", "data-field": field });
  input.checked = checked;
  input.addEventListener("change", () => setState(printer, { [field]: input.checked }));
  return element("label", { class: "switch" }, input, ` ${label}`);
}

function paperChoice(printer, current) {
  const group = element("fieldset", { class: "paper-choice" }, element("legend", { text: "Paper" }));
  for (const [value, label] of [["ok", "ok"], ["near_end", "near end"], ["out", "out"]]) {
    const input = element("input", { type: "radio", name: `paper-${printer}`, value });
    input.checked = value === current;
    input.addEventListener("change", () => setState(printer, { paper: value }));
    group.append(element("label", {}, input, ` ${label}`));
  }
  return group;
}

// A tee's relay to the real printer: where, whether it is reachable, what did not reach it.
function teeLine(tee) {
  if (!tee) return null;
  const reach = { up: "reachable", down: "unreachable", unknown: "not tried yet" }[tee.state];
  const error = tee.state === "down" && tee.last_error ? ` (${tee.last_error})` : "";
  return element("p", { class: `meta tee tee-${tee.state}`,
    text: `tee to ${tee.to}: ${reach}${error} · ${tee.counters.jobs_relayed} jobs relayed, ` +
          `${tee.counters.receipts_undelivered} receipts not printed` });
}

// A printer that polls a CloudPRNT server: where, and whether its polls work.
function cloudprntLine(poller) {
  if (!poller) return null;
  const error = poller.state === "down" && poller.last_error ? ` (${poller.last_error})` : "";
  return element("p", { class: `meta cloudprnt tee-${poller.state}`,
    text: `CloudPRNT ${poller.url} as ${poller.mac}: ${poller.state}${error} · ` +
          `${poller.counters.jobs_printed} jobs printed` });
}

function printerCard(printer) {
  const { state, counters, model } = printer;
  return element("article", { class: "card printer", "data-printer": printer.name },
    element("h3", { text: printer.name }),
    element("p", { class: "meta",
      text: `${printer.listener || "no listener"} · ${model.maker} ${model.model} · ` +
            `${counters.receipts} receipts, ${counters.jobs} jobs` }),
    ...[teeLine(printer.tee), cloudprntLine(printer.cloudprnt)].filter(Boolean),
    stateSwitch(printer.name, "online", "online", state.online),
    paperChoice(printer.name, state.paper),
    stateSwitch(printer.name, "cover_open", "cover open", state.cover_open),
    stateSwitch(printer.name, "drawer_open", "drawer open", state.drawer_open),
    element("p", { class: "saved", role: "status" }));
}

async function setState(name, change) { // errors are shown on the printer's card
  const card = document.querySelector(`[data-printer="${CSS.escape(name)}"]`);
  const note = card && $(".saved", card);
  try {
    await apiJson(`/api/printers/${encodeURIComponent(name)}/state`,
                  { method: "PUT", body: JSON.stringify(change) });
    if (note) note.textContent = "saved";
  } catch (error) {
    if (note) note.textContent = `not saved: ${error.message}`;
  }
}

async function showPrinters() {
  const { printers } = await apiJson("/api/printers");
  $("#printer-list").replaceChildren(...printers.map(printerCard));
}

// -- health ----------------------------------------------------------------------------------

function pairs(list, values) {
  list.replaceChildren(...Object.entries(values).flatMap(([key, value]) => [
    element("dt", { text: key }),
    element("dd", { text: typeof value === "object" ? JSON.stringify(value) : String(value) }),
  ]));
}

async function showHealth() {
  const health = await (await api("/api/health")).json();
  $("#health-status").textContent = health.status;
  pairs($("#health-checks"), health.checks || {});
  pairs($("#stats"), await apiJson("/api/stats"));
  const targets = $("#targets tbody");
  const dead = $("#dead tbody");
  const forwarder = await api("/api/forwarder");
  if (forwarder.status === 404) {
    targets.replaceChildren(element("tr", {}, element("td", { colspan: 5,
      text: "No webhook targets are configured." })));
    dead.replaceChildren();
    $("#retry-all").hidden = true;
    return;
  }
  $("#retry-all").hidden = false;
  targets.replaceChildren(...(await forwarder.json()).targets.map((t) => element("tr", {},
    element("td", { text: t.name }), element("td", { text: t.url }),
    element("td", { text: t.pending }), element("td", { text: t.dead }),
    element("td", { text: t.disabled ? `disabled: ${t.disabled}` :
                          t.last_error ? `failing: ${t.last_error}` : "ok" }))));
  const letters = (await apiJson("/api/forwarder/dead")).dead;
  dead.replaceChildren(...letters.map((d) => {
    const retry = element("button", { type: "button", text: "Retry" });
    retry.addEventListener("click", () => guard(async () => {
      await apiJson(`/api/forwarder/dead/${d.id}/retry`, { method: "POST", body: "{}" });
      await showHealth();
    }));
    return element("tr", { "data-delivery": d.id }, element("td", { text: d.id }),
      element("td", { text: d.target }),
      element("td", {}, element("a", { href: `#receipt/${d.receipt_id}`, text: `#${d.receipt_id}` })),
      element("td", { text: d.attempts }), element("td", { text: d.last_error || "" }),
      element("td", {}, retry));
  }));
}

async function retryAll() {
  await apiJson("/api/forwarder/dead/retry", { method: "POST", body: "{}" });
  await showHealth();
}

// -- views -----------------------------------------------------------------------------------

let started = false;

async function route() {
  if (!$("#login").hidden) return;
  const [view, argument] = (location.hash.slice(1) || "live").split("/");
  for (const section of document.querySelectorAll("[data-view]")) {
    section.hidden = section.dataset.view !== view;
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  await guard(async () => {
    if (view === "search") await loadPrinterChoices();
    else if (view === "receipt") await showReceipt(Number(argument));
    else if (view === "printers") await showPrinters();
    else if (view === "health") await showHealth();
  });
}

async function start() {
  if (started) return;
  started = true;
  // The live feed keeps running whichever view is shown.
  const live = await guard(async () => { await startLive(); return true; });
  if (!live) {
    started = false;
    if ($("#login").hidden) setTimeout(start, RECONNECT_MS); // printerd not up yet: try again
    return;
  }
  route();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (event) => guard(() => logIn(event)));
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guard(() => showResults(searchUrl(), false));
  });
  $("#search-more").addEventListener("click",
    () => nextPage && guard(() => showResults(nextPage, true)));
  $("#retry-all").addEventListener("click", () => guard(retryAll));
  window.addEventListener("hashchange", route);
  start();
});
