// printerd's page: where to print, live receipts (SSE), search, a receipt and its commands,
// printer state switches, health.
// Plain browser JavaScript, no build step and nothing from the network but this printerd.
"use strict";

const FEED_SIZE = 50;       // receipts kept on the live page per printer
const PAGE_SIZE = 20;       // search results per page
const COMMANDS_PAGE = 500;  // commands listed per page on a receipt's page
const RECONNECT_MS = 3000;  // after the stream was refused or closed for good
const REFRESH_MS = 5000;    // printers and health refresh this often while shown
const TEST_WAIT_MS = 15000; // how long a test receipt may take to show up
const SCROLLED_PX = 40;     // scrolled further than this: the reader is reading, hold new cards

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
  // Nothing is connected yet: no state to show, and no red badge to alarm anyone.
  $("#connection").hidden = true;
  $("#logout").hidden = true;
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
  $("#connection").hidden = false;
  started = false;
  start();
}

async function logOut() {
  await fetch("/api/session", { method: "DELETE", credentials: "same-origin" });
  // A fresh page: nothing that was shown while logged in stays on screen.
  history.replaceState(null, "", location.pathname);
  location.reload();
}

async function showLogoutIfTokens() {
  const response = await fetch("/api/session", { credentials: "same-origin" });
  if (!response.ok) return;
  const session = await response.json();
  $("#logout").hidden = !(session.tokens && session.logged_in);
}

// -- a receipt as on paper -------------------------------------------------------------------

// The HTML rendering goes into a shadow root: its styles stay inside, the page's stay out.
// DOMParser never runs scripts, and the page's Content-Security-Policy allows none inline.
// Renderings are cached by their URL: naming the database keeps another database's receipt
// of the same id from coming out of the cache.
function rendering(receiptId, format) {
  return `/api/receipts/${receiptId}.${format}` + (databaseId ? `?db=${databaseId}` : "");
}

async function paper(receiptId) {
  const host = element("div", { class: "paper" });
  const shadow = host.attachShadow({ mode: "open" });
  try {
    const response = await api(rendering(receiptId, "html"));
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

// -- where to print --------------------------------------------------------------------------

let printers = [];  // the last /api/printers answer

function hostAndPort(address) {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  return match ? { host: match[1], port: match[2] } : null;
}

// Copy-paste commands that print a receipt to this address, per common client.
function clientCommands(printer, address) {
  const where = hostAndPort(address);
  if (!where) return [];
  const { host, port } = where;
  const star = printer.emulation === "star";
  const cut = star ? "\\x1bd\\x02" : "\\x1dV\\x00";  // Star ESC d 2, ESC/POS GS V 0
  const commands = [
    ["Shell (bash)", `printf '\\x1b@Hello from the POS\\nTotal 12.50\\n${cut}' > /dev/tcp/${host}/${port}`],
  ];
  if (!star) {
    commands.push(["python-escpos", `python3 -c 'from escpos.printer import Network; ` +
      `p = Network("${host}", port=${port}); p.text("Hello from python-escpos\\n"); p.cut(); p.close()'`]);
  }
  commands.push(["Node.js", `node -e 'require("net").connect(${port}, "${host}", function () ` +
    `{ this.end("\\x1b@Hello from Node.js\\n${cut}", "latin1") })'`]);
  return commands;
}

async function copyText(text, button) {
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    // Plain http on a LAN address has no clipboard API: select the command for Ctrl+C.
    const code = button.parentElement.querySelector("code");
    getSelection().selectAllChildren(code);
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 3000);
}

function addressList(printer) {
  if (!printer.addresses.length) return element("p", { class: "hint", text: "not listening" });
  return element("ul", { class: "addresses" },
    ...printer.addresses.map((address) => element("li", {}, element("code", { text: address }))));
}

// The "Print a test receipt" button: printerd sends a sample job to the printer's own port,
// and the button's note follows it until it shows up in the feed.
const testWatchers = new Map();  // check code -> function(receipt)
const lastArrived = [];          // the newest receipts that arrived: one may beat the POST's answer

function testButton(printer) {
  const note = element("span", { class: "test-result", role: "status" });
  const button = element("button", { type: "button", class: "test-print",
                                     text: "Print a test receipt" });
  button.addEventListener("click", () => guard(async () => {
    note.textContent = "Sending…";
    try {
      const sent = await apiJson(`/api/printers/${encodeURIComponent(printer.name)}/test-receipt`,
                                 { method: "POST", body: "{}" });
      note.textContent = `Sent ${sent.bytes} bytes to ${sent.sent_to}; waiting for the receipt…`;
      const printed = (receipt) => note.replaceChildren("Printed: ",
        element("a", { href: `#receipt/${receipt.id}`, text: `receipt #${receipt.id}` }));
      const arrived = lastArrived.find((receipt) => receipt.text.includes(sent.check));
      if (arrived) {
        printed(arrived);
        return;
      }
      const timer = setTimeout(() => {
        testWatchers.delete(sent.check);
        note.textContent = `Sent to ${sent.sent_to}, but no receipt came back: see Health.`;
      }, TEST_WAIT_MS);
      testWatchers.set(sent.check, (receipt) => {
        clearTimeout(timer);
        printed(receipt);
      });
    } catch (error) {
      if (!(error instanceof LoginNeeded)) note.textContent = `Not sent: ${error.message}`;
    }
  }));
  return element("p", { class: "test" }, button, " ", note);
}

function wherePrinter(printer) {
  const first = printer.addresses[0];
  const commands = first ? clientCommands(printer, first) : [];
  const list = element("dl", { class: "clients" });
  for (const [client, command] of commands) {
    const copy = element("button", { type: "button", class: "quiet copy", text: "Copy",
                                     "aria-label": `Copy the ${client} command` });
    copy.addEventListener("click", () => copyText(command, copy));
    list.append(element("dt", { text: client }),
      element("dd", {}, element("pre", { tabindex: "0" }, element("code", { text: command })), copy));
  }
  const { model } = printer;
  return element("article", { class: "printer-where", "data-printer": printer.name },
    element("h3", { text: printer.name }),
    element("p", { class: "meta", text: `${model.maker} ${model.model} · ` +
      (printer.emulation === "star" ? "Star Line mode / StarPRNT" : "ESC/POS") }),
    addressList(printer), list, testButton(printer));
}

function showWhere() {
  $("#where-printers").replaceChildren(...printers.map(wherePrinter));
}

async function loadPrinters() {
  printers = (await apiJson("/api/printers")).printers;
  for (const printer of printers) knowPrinter(printer.name);
  return printers;
}

// -- live feed -------------------------------------------------------------------------------

let stream = null;
let lastId = 0;
let databaseId = null;      // which database the receipts shown came from
let held = [];              // receipts that arrived while the reader was reading, oldest first
let heldDropped = 0;        // held receipts dropped past FEED_SIZE (still in search)
let filter = "";            // the printer whose receipts are shown ("": every printer)
let pointerInFeed = false;
const printerNames = [];

function setConnection(state) {
  const badge = $("#connection");
  badge.className = `conn ${state}`;
  badge.textContent = state;
}

// The reader is reading when the page is scrolled down, the pointer or focus is on the feed, or
// the feed is paused: then new receipts wait in the "new receipts" bar, nothing moves.
function reading() {
  return $("#pause").checked || window.scrollY > SCROLLED_PX || pointerInFeed
    || $("#feed").contains(document.activeElement);
}

function knowPrinter(name) {
  if (printerNames.includes(name)) return;
  printerNames.push(name);
  const button = element("button", { type: "button", "data-printer": name, "aria-pressed": "false" },
    name, element("span", { class: "count" }));
  button.addEventListener("click", () => setFilter(name));
  $("#feed-filter").append(button);
}

function setFilter(name) {
  filter = name;
  for (const button of document.querySelectorAll("#feed-filter button")) {
    button.setAttribute("aria-pressed", String(button.dataset.printer === name));
  }
  for (const card of $("#feed").children) card.hidden = !visibleUnderFilter(card.dataset.printer);
  markShownAsRead();
  updateCounts();
}

function visibleUnderFilter(printer) {
  return filter === "" || printer === filter;
}

function markShownAsRead() {
  for (const card of document.querySelectorAll("#feed .card.unread")) {
    if (!card.hidden) card.classList.remove("unread");
  }
}

// Unread per printer: receipts held in the bar, and cards of printers not shown now.
function updateCounts() {
  const unread = new Map();
  const count = (printer) => unread.set(printer, (unread.get(printer) || 0) + 1);
  for (const receipt of held) count(receipt.printer);
  for (const card of document.querySelectorAll("#feed .card.unread")) count(card.dataset.printer);
  let total = 0;
  for (const button of document.querySelectorAll("#feed-filter button")) {
    const name = button.dataset.printer;
    if (name === "") continue;
    const n = unread.get(name) || 0;
    total += n;
    $(".count", button).textContent = n ? ` ${n}` : "";
    button.setAttribute("aria-label", n ? `${name}, ${n} unread` : name);
  }
  const all = $('#feed-filter button[data-printer=""]');
  if (all) {
    $(".count", all).textContent = total ? ` ${total}` : "";
    all.setAttribute("aria-label", total ? `All printers, ${total} unread` : "All printers");
  }
  const bar = $("#new-receipts");
  const waiting = held.filter((r) => visibleUnderFilter(r.printer)).length;
  bar.textContent = waiting === 1 ? "1 new receipt" : `${waiting} new receipts`;
  bar.classList.toggle("waiting", waiting > 0);
  bar.disabled = waiting === 0;
}

function addToFeed(receipt) {
  if (receipt.id <= lastId) return; // already shown (a replay after reconnecting)
  lastId = receipt.id;
  knowPrinter(receipt.printer);
  lastArrived.push(receipt);
  if (lastArrived.length > 20) lastArrived.shift();
  for (const [check, watcher] of testWatchers) {
    if (receipt.text.includes(check)) {
      testWatchers.delete(check);
      watcher(receipt);
    }
  }
  $("#live-empty").hidden = true;
  // Once receipts wait, later ones wait behind them (in order) until the reader asks.
  if (reading() || held.length) {
    held.push(receipt);
    if (held.length > FEED_SIZE * printerNames.length) {
      held.shift();
      heldDropped += 1;
    }
    updateCounts();
    return;
  }
  showCard(receipt);
  updateCounts();
  scheduleViewRefresh();
}

function showCard(receipt) {
  const card = element("article", { class: "card", "data-receipt-id": receipt.id,
                                    "data-printer": receipt.printer }, receiptHeader(receipt));
  card.hidden = !visibleUnderFilter(receipt.printer);
  if (card.hidden) card.classList.add("unread");
  const feed = $("#feed");
  feed.prepend(card);
  // Each printer keeps its newest FEED_SIZE cards: a busy printer never pushes a quiet one out.
  const kept = feed.querySelectorAll(`.card[data-printer="${CSS.escape(receipt.printer)}"]`);
  for (let i = FEED_SIZE; i < kept.length; i += 1) kept[i].remove();
  paper(receipt.id).then((drawn) => card.append(drawn));
}

// The reader asked for the waiting receipts: they go on top, in order, and the page goes there.
function showHeld() {
  const waiting = held;
  held = [];
  for (const receipt of waiting) showCard(receipt);
  if (heldDropped) {
    $("#live-empty").hidden = false;
    $("#live-empty").textContent = `${heldDropped} older receipts that arrived meanwhile are ` +
      "not shown here: Search finds them.";
    heldDropped = 0;
  }
  window.scrollTo({ top: 0 });
  markShownAsRead();
  updateCounts();
  scheduleViewRefresh();
}

function clearFeed() {
  $("#feed").replaceChildren();
  held = [];
  heldDropped = 0;
  lastId = 0;
  updateCounts();
}

function connect() {
  if (stream) stream.close();
  // The browser resumes by itself with Last-Event-ID; `after` covers a fresh connection.
  stream = new EventSource(`/api/stream?after=${lastId}`);
  setConnection("connecting");
  stream.onopen = () => setConnection("live");
  stream.addEventListener("database", (event) => {
    const { database_id: id } = JSON.parse(event.data);
    // Another database (replaced, restored): its ids start again, so start over from it.
    if (databaseId !== null && id !== databaseId) {
      guard(startOver);
      return;
    }
    databaseId = id;
  });
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

async function loadRecent() {
  const recent = await apiJson(`/api/recent?limit=${PAGE_SIZE}`);
  databaseId = recent.database_id ?? null;
  for (const receipt of recent.receipts.slice().reverse()) addToFeed(receipt);
  return recent.receipts.length;
}

async function startOver() {
  if (stream) stream.close();
  stream = null;
  clearFeed();
  $("#live-empty").hidden = false;
  await loadRecent();
  connect();
}

async function startLive() {
  await loadPrinters();
  if (!$('#feed-filter button[data-printer=""]')) {
    const all = element("button", { type: "button", "data-printer": "", "aria-pressed": "true" },
      "All", element("span", { class: "count" }));
    all.addEventListener("click", () => setFilter(""));
    $("#feed-filter").prepend(all);
  }
  showWhere();
  const shown = await loadRecent();
  // The first screen of an empty printerd says where to print; later it stays folded away.
  $("#where").open = shown === 0;
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
  const chosen = select.value;
  await loadPrinters();
  select.replaceChildren(element("option", { value: "", text: "any" }),
    ...printers.map((p) => element("option", { value: p.name, text: p.name })));
  select.value = chosen;
}

// -- one receipt -----------------------------------------------------------------------------

let commandsNext = null;

function hex(values) {
  return values.map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

function commandRow(entry) {
  const params = entry.params ? hex(entry.params) : "";
  const more = entry.more_bytes ? ` … ${entry.more_bytes} bytes more` : "";
  let detail = entry.text !== undefined ? entry.text : "";
  if (entry.reply !== undefined) detail = entry.reply === null ? "no reply" : `reply: ${entry.reply}`;
  const row = element("tr", { class: `${entry.kind}${entry.known ? "" : " unknown"}` },
    element("td", { class: "num", text: entry.offset }),
    element("td", { class: "num", text: entry.length }),
    element("td", {}, element("code", { text: entry.name }),
            entry.known ? "" : element("span", { class: "flag", text: " unknown" })),
    element("td", {}, element("code", { text: params + more })),
    element("td", { class: entry.kind === "text" ? "text" : "" }, detail));
  return row;
}

async function showCommands(id, append, isCurrent = () => true) {
  const body = $("#commands tbody");
  const url = append && commandsNext ? commandsNext : `/api/receipts/${id}/commands?limit=${COMMANDS_PAGE}`;
  const listing = await apiJson(url);
  if (!isCurrent()) return;  // the user moved on: this listing belongs to a receipt no longer shown
  if (!append) body.replaceChildren();
  body.append(...listing.commands.map(commandRow));
  commandsNext = listing.next;
  $("#commands-more").hidden = !commandsNext;
  const { summary } = listing;
  $("#commands-summary").textContent =
    `${summary.commands} commands and ${summary.text_runs} text runs in ${summary.bytes} bytes ` +
    `(${summary.emulation}); ${summary.unknown} unknown, ${summary.status_queries} status ` +
    `queries. Showing ${body.children.length}.`;
}

function selectReceiptTab(name) {
  for (const tab of ["printed", "commands"]) {
    const selected = tab === name;
    const button = $(`#tab-${tab}`);
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`#panel-${tab}`).hidden = !selected;
  }
}

async function showReceipt(id, tab, isCurrent) {
  $("#receipt-title").textContent = `Receipt #${id}`;
  // Nothing of the receipt shown before stays, under an error or under this one.
  $("#receipt-body").hidden = true;
  $("#receipt-meta").replaceChildren();
  $("#receipt-paper").replaceChildren();
  $("#receipt-text").textContent = "";
  $("#receipt-image").removeAttribute("src");
  $("#commands tbody").replaceChildren();
  $("#commands-summary").textContent = "";
  $("#commands-more").hidden = true;
  const receipt = await apiJson(`/api/receipts/${id}`);
  if (!isCurrent()) return;
  $("#receipt-meta").replaceChildren(receiptHeader(receipt));
  $("#receipt-raw").href = `/api/receipts/${id}/raw`;
  $("#receipt-txt").href = rendering(id, "txt");
  $("#receipt-html").href = rendering(id, "html");
  $("#receipt-png").href = rendering(id, "png");
  $("#receipt-json").href = `/api/receipts/${id}/commands`;
  $("#receipt-image").src = rendering(id, "png");
  selectReceiptTab(tab === "commands" ? "commands" : "printed");
  $("#receipt-body").hidden = false;
  const drawn = await paper(id);
  const text = await (await api(rendering(id, "txt"))).text();
  if (!isCurrent()) return;
  $("#receipt-paper").replaceChildren(drawn);
  $("#receipt-text").textContent = text;
  await showCommands(id, false, isCurrent);
}

// -- printers --------------------------------------------------------------------------------

function stateSwitch(printer, field, label) {
  const input = element("input", { type: "checkbox", "data-field": field });
  input.addEventListener("change", () => setState(printer, { [field]: input.checked }));
  return element("label", { class: "switch" }, input, ` ${label}`);
}

function paperChoice(printer) {
  const group = element("fieldset", { class: "paper-choice" }, element("legend", { text: "Paper" }));
  for (const [value, label] of [["ok", "ok"], ["near_end", "near end"], ["out", "out"]]) {
    const input = element("input", { type: "radio", name: `paper-${printer}`, value });
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
  return element("article", { class: "card printer", "data-printer": printer.name },
    element("h3", { text: printer.name }),
    element("p", { class: "meta counters" }),
    element("div", { class: "relays" }),
    element("p", { class: "where-label", text: "POS print to:" }), addressList(printer),
    stateSwitch(printer.name, "online", "online"),
    paperChoice(printer.name),
    stateSwitch(printer.name, "cover_open", "cover open"),
    stateSwitch(printer.name, "drawer_open", "drawer open"),
    testButton(printer),
    element("p", { class: "saved", role: "status" }));
}

// A refresh changes what changed and leaves alone the control being used.
function updatePrinterCard(card, printer) {
  const { state, counters, model } = printer;
  $(".counters", card).textContent = `${printer.listener || "no listener"} · ${model.maker} ` +
    `${model.model} · ${counters.receipts} receipts, ${counters.jobs} jobs`;
  $(".relays", card).replaceChildren(
    ...[teeLine(printer.tee), cloudprntLine(printer.cloudprnt)].filter(Boolean));
  for (const input of card.querySelectorAll("input[data-field]")) {
    if (input !== document.activeElement) input.checked = state[input.dataset.field];
  }
  for (const input of card.querySelectorAll("input[type=radio]")) {
    if (input !== document.activeElement) input.checked = input.value === state.paper;
  }
}

async function setState(name, change) { // errors are shown on the printer's card
  const card = document.querySelector(`#printer-list [data-printer="${CSS.escape(name)}"]`);
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
  await loadPrinters();
  const list = $("#printer-list");
  const shown = [...list.children].map((card) => card.dataset.printer).join("\n");
  if (shown !== printers.map((p) => p.name).join("\n")) {
    list.replaceChildren(...printers.map(printerCard));
  }
  for (const printer of printers) {
    updatePrinterCard($(`[data-printer="${CSS.escape(printer.name)}"]`, list), printer);
  }
}

// -- health ----------------------------------------------------------------------------------

function pairs(list, values) {
  list.replaceChildren(...Object.entries(values).flatMap(([key, value]) => [
    element("dt", { text: key }),
    element("dd", { text: typeof value === "object" ? JSON.stringify(value) : String(value) }),
  ]));
}

function cell(label, ...children) {
  return element("td", { "data-label": label }, ...children);
}

let deadShown = "";

async function showHealth() {
  const health = await (await api("/api/health")).json();
  $("#health-status").textContent = health.status;
  pairs($("#health-checks"), health.checks || {});
  await loadPrinters();
  $("#health-addresses").replaceChildren(...printers.flatMap((p) => [
    element("dt", { text: p.name }),
    element("dd", {}, ...(p.addresses.length ? p.addresses : ["not listening"]).flatMap(
      (address, i) => [i ? ", " : "", element("code", { text: address })])),
  ]));
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
    cell("Target", t.name), cell("URL", t.url), cell("Pending", t.pending), cell("Dead", t.dead),
    cell("State", t.disabled ? `disabled: ${t.disabled}` :
                  t.last_error ? `failing: ${t.last_error}` : "ok"))));
  const letters = (await apiJson("/api/forwarder/dead")).dead;
  // Rebuilt only when it changed: a refresh never takes the focus off a Retry button.
  const signature = JSON.stringify(letters);
  if (signature === deadShown) return;
  deadShown = signature;
  dead.replaceChildren(...letters.map((d) => {
    const retry = element("button", { type: "button", text: "Retry",
                                      "aria-label": `Retry delivery ${d.id}` });
    retry.addEventListener("click", () => guard(async () => {
      await apiJson(`/api/forwarder/dead/${d.id}/retry`, { method: "POST", body: "{}" });
      await showHealth();
    }));
    return element("tr", { "data-delivery": d.id }, cell("Delivery", d.id),
      cell("Target", d.target),
      cell("Receipt", element("a", { href: `#receipt/${d.receipt_id}`, text: `#${d.receipt_id}` })),
      cell("Attempts", d.attempts), cell("Last error", d.last_error || ""),
      cell("", retry));
  }));
}

async function retryAll() {
  await apiJson("/api/forwarder/dead/retry", { method: "POST", body: "{}" });
  await showHealth();
}

// -- views -----------------------------------------------------------------------------------

let started = false;
let routeCount = 0;
let currentView = "live";
let refreshTimer = null;

function currentRoute() {
  const [view, argument, tab] = (location.hash.slice(1) || "live").split("/");
  return { view, argument, tab };
}

// Printers and Health follow what happens: every REFRESH_MS, and soon after a receipt arrives.
function scheduleViewRefresh(delay = 500) {
  if (currentView !== "printers" && currentView !== "health") return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshView, delay);
}

async function refreshView() {
  clearTimeout(refreshTimer);
  if (!$("#login").hidden || document.hidden) {
    refreshTimer = setTimeout(refreshView, REFRESH_MS);
    return;
  }
  if (currentView === "printers") await guard(showPrinters);
  else if (currentView === "health") await guard(showHealth);
  else return;
  refreshTimer = setTimeout(refreshView, REFRESH_MS);
}

async function route() {
  if (!$("#login").hidden) return;
  const routeNumber = ++routeCount;
  const isCurrent = () => routeNumber === routeCount;
  const { view, argument, tab } = currentRoute();
  currentView = view;
  for (const section of document.querySelectorAll("[data-view]")) {
    section.hidden = section.dataset.view !== view;
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clearTimeout(refreshTimer);
  await guard(async () => {
    if (view === "search") await loadPrinterChoices();
    else if (view === "receipt") await showReceipt(Number(argument), tab, isCurrent);
    else if (view === "printers" || view === "health") await refreshView();
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
  guard(showLogoutIfTokens);
  route();
}

function watchTheReader() {
  const feed = $("#feed");
  feed.addEventListener("pointerenter", () => { pointerInFeed = true; });
  feed.addEventListener("pointerleave", () => { pointerInFeed = false; });
  $("#pause").addEventListener("change", () => {
    if (!$("#pause").checked && held.length) showHeld();
  });
  $("#new-receipts").addEventListener("click", () => showHeld());
  // The sticky feed bar sits under the header, whose height changes as it wraps.
  new ResizeObserver(() => {
    document.documentElement.style.setProperty("--header-height", `${$("#top").offsetHeight}px`);
  }).observe($("#top"));
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (event) => guard(() => logIn(event)));
  $("#logout").addEventListener("click", () => guard(logOut));
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guard(() => showResults(searchUrl(), false));
  });
  $("#search-more").addEventListener("click",
    () => nextPage && guard(() => showResults(nextPage, true)));
  $("#retry-all").addEventListener("click", () => guard(retryAll));
  for (const tab of ["printed", "commands"]) {
    $(`#tab-${tab}`).addEventListener("click", () => {
      const { argument } = currentRoute();
      history.replaceState(null, "", `#receipt/${argument}${tab === "commands" ? "/commands" : ""}`);
      selectReceiptTab(tab);
    });
  }
  $("#commands-more").addEventListener("click",
    () => guard(() => showCommands(currentRoute().argument, true)));
  watchTheReader();
  updateCounts();
  window.addEventListener("hashchange", route);
  start();
});
