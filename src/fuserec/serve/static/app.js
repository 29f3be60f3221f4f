// fuserec web page: plain JS over the JSON API of the same app.
"use strict";

const $ = (sel) => document.querySelector(sel);
const TABS = ["overview", "foryou", "search", "catalog"];
const TOKEN_KEY = "fuserec.token";
const WEAK_MATCH = 0.2; // search results scoring below this are marked "weak match"
const state = {
  user: null, userKnown: false, tab: "foryou", catalogOffset: 0, health: null, attributes: [],
  timer: null, liked: {}, lastSearch: false,
};
const MOD_LABEL = { text: "text", image: "image", audio: "audio" };

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = options.headers || {};
  const token = $("#token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (!res.ok) throw new ApiError((body && body.error) || `${res.status} ${res.statusText}`, res.status);
  return body;
}

// attribute columns are called attr_<name> inside; people know them by <name>
function plain(text) { return String(text).replace(/\battr_/g, ""); }

function showError(text) {
  const box = $("#msg");
  if (!text) { box.hidden = true; return; }
  box.textContent = plain(text);
  box.hidden = false;
}

// a note (confirmation or advice) stays until dismissed or replaced; refreshes do not clear it.
// action: { label, run } adds a button (e.g. Undo) that runs once and closes the note
function note(text, kind = "ok", action = null) {
  const box = $("#note");
  const button = box.querySelector(".note-action");
  button.hidden = !action;
  button.onclick = null;
  if (!text) { box.hidden = true; return; }
  box.querySelector(".note-text").textContent = text;
  if (action) {
    button.textContent = action.label;
    button.onclick = () => { button.onclick = null; box.hidden = true; action.run(); };
  }
  box.className = `note ${kind}`;
  box.hidden = false;
  clearTimeout(state.noteTimer); // confirmations go after a while; advice stays until acted on
  if (kind === "ok") state.noteTimer = setTimeout(() => { box.hidden = true; }, 12000);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function fmt(x, digits = 3) { return Number(x).toFixed(digits); }

// -- filters ----------------------------------------------------------------------------
function filters() {
  const out = [];
  for (const a of state.attributes) {
    if (a.kind === "number") {
      const lo = $(`#facet-${a.name}-min`).value.trim();
      const hi = $(`#facet-${a.name}-max`).value.trim();
      if (lo !== "") out.push(`${a.name}>=${lo}`);
      if (hi !== "") out.push(`${a.name}<=${hi}`);
    } else {
      const v = $(`#facet-${a.name}`).value;
      if (v !== "") out.push(`${a.name}==${v}`);
    }
  }
  const typed = $("#filter").value.split(/[,;]/).map((s) => s.trim()).filter(Boolean);
  const active = out.length + typed.length;
  $("#clear-filters").hidden = !active;
  // folded away on a phone: the toggle still says that filters are on
  $("#panel-toggle-label").textContent = `Filters & options${active ? ` (${active} on)` : ""}`;
  return out.concat(typed);
}

function buildFacets(attributes) {
  const box = $("#facets");
  box.replaceChildren();
  for (const a of attributes) {
    if (a.kind === "number") {
      const step = Number.isInteger(a.min) && Number.isInteger(a.max) ? "1" : "any";
      const input = (which, value) => el("input", {
        id: `facet-${a.name}-${which}`, type: "number", step, min: a.min, max: a.max,
        placeholder: String(value), "aria-label": `${a.name} ${which}`,
        "data-testid": `facet-${a.name}-${which}`,
      });
      box.append(el("div", { class: "facet" }, el("span", { class: "facet-name" }, a.name),
        el("div", { class: "range" }, input("min", a.min), el("span", {}, "–"), input("max", a.max))));
    } else {
      const select = el("select", { id: `facet-${a.name}`, "data-testid": `facet-${a.name}` },
        el("option", { value: "" }, "any"));
      for (const v of a.values) select.append(el("option", { value: v }, v));
      box.append(el("label", { class: "facet" }, el("span", { class: "facet-name" }, a.name), select));
    }
  }
  box.querySelectorAll("input, select").forEach((c) => c.addEventListener("change", filtersChanged));
}

// put filters from a link back into the controls (what they cannot show goes to the text box)
function restoreFilters(list) {
  const rest = [];
  for (const f of list) {
    const m = /^\s*(?:attr_)?([A-Za-z_][\w]*)\s*(>=|<=|==)\s*(.+?)\s*$/.exec(f);
    const a = m && state.attributes.find((x) => x.name === m[1]);
    let used = false;
    if (a && a.kind === "number" && m[2] !== "==") {
      const box = $(`#facet-${a.name}-${m[2] === ">=" ? "min" : "max"}`);
      if (!box.value) { box.value = m[3]; used = true; }
    } else if (a && a.kind === "text" && m[2] === "==" && a.values.includes(m[3])) {
      $(`#facet-${a.name}`).value = m[3]; used = true;
    }
    if (!used) rest.push(f);
  }
  $("#filter").value = rest.join(", ");
  if (rest.length) $("#advanced").open = true;
  filters();
}

function filtersChanged() {
  syncUrl();
  if (state.tab === "foryou") loadRecs();
  if (state.tab === "catalog") loadCatalog(true); else $("#catalog").replaceChildren();
  if (state.tab === "search" && state.lastSearch) runSearch();
}

// -- URL state --------------------------------------------------------------------------
function syncUrl() {
  const p = new URLSearchParams();
  if (state.tab !== "foryou") p.set("tab", state.tab);
  if (state.user) p.set("user", state.user);
  if (Number($("#diversity").value) > 0) p.set("diversity", $("#diversity").value);
  if ($("#k").value !== "12") p.set("k", $("#k").value);
  if (!$("#explain").checked) p.set("explain", "0");
  for (const f of filters()) p.append("filter", f);
  const url = `${location.pathname}${p.toString() ? `?${p}` : ""}`;
  history.replaceState(null, "", url);
  $("#share").href = url;
}

function restoreFromUrl() {
  const p = new URLSearchParams(location.search);
  const div = Number(p.get("diversity"));
  if (div > 0 && div <= 1) { $("#diversity").value = div; $("#div-out").textContent = fmt(div, 2); }
  if (["6", "12", "24"].includes(p.get("k"))) $("#k").value = p.get("k");
  if (p.get("explain") === "0") $("#explain").checked = false;
  restoreFilters(p.getAll("filter"));
  return { user: p.get("user"), tab: TABS.includes(p.get("tab")) ? p.get("tab") : "foryou" };
}

// -- cards ------------------------------------------------------------------------------
// shares of the positive part: negative contributions count as 0 %
function shares(obj) {
  const parts = Object.entries(obj || {});
  const total = parts.reduce((a, [, v]) => a + Math.max(v, 0), 0);
  return parts.map(([name, v]) => [name, total > 0 ? (100 * Math.max(v, 0)) / total : 0]);
}

function explanationNode(exp) {
  const wrap = el("div");
  const parts = shares(exp.modalities);
  const bar = el("div", { class: "bar", title: "What made the item similar to the user's taste, by modality" });
  const legend = el("div", { class: "legend" });
  for (const [m, pct] of parts) {
    const seg = el("span", { class: m });
    seg.style.width = `${pct}%`;
    bar.append(seg);
    if (pct >= 0.5) {
      const key = el("i"); key.style.background = `var(--${m}, #94a3b8)`; // own features: grey
      legend.append(el("span", {}, key, `${MOD_LABEL[m] || m} ${Math.round(pct)}%`));
    }
  }
  wrap.append(bar, legend);
  if (exp.members && Object.keys(exp.members).length) {
    const text = shares(exp.members).filter(([, p]) => p >= 0.5)
      .map(([n, p]) => `${n} ${Math.round(p)}%`).join(" · ");
    wrap.append(el("div", { class: "because", "data-testid": "members" },
      `Ranked by ${exp.model || "a blend"}${text ? `: ${text}` : ""}`));
  }
  if (exp.because_you_liked && exp.because_you_liked.length) {
    const names = exp.because_you_liked.slice(0, 2).map((x) => x.title);
    const p = el("div", { class: "because" }, "Because they liked ");
    names.forEach((n, i) => { p.append(el("b", {}, n)); if (i < names.length - 1) p.append(" and "); });
    wrap.append(p);
  }
  return wrap;
}

// opts: score (number), scoreLabel, scoreTitle, weak (bool), like (bool)
function card(item, opts = {}) {
  const node = $("#card-tpl").content.firstElementChild.cloneNode(true);
  node.dataset.id = item.id;
  const media = node.querySelector(".media");
  if (item.images.length) {
    media.append(el("img", { src: item.images[0], alt: item.title, loading: "lazy" }));
  } else {
    media.append(el("div", { class: "placeholder" }, item.audio.length ? "♪" : "◆"));
  }
  media.addEventListener("click", () => showDetail(item.id));
  node.querySelector(".title").textContent = item.title;
  node.querySelector(".title").addEventListener("click", () => showDetail(item.id));
  const line = node.querySelector(".scoreline");
  if (opts.score === undefined || opts.score === null) line.remove();
  else {
    const value = opts.count ? `${Math.round(opts.score)}×` : fmt(opts.score);
    line.append(el("span", { class: "score", title: opts.scoreTitle || "" },
      `${opts.scoreLabel || "score"} ${value}`));
    if (opts.weak) line.append(el("span", { class: "weak", "data-testid": "weak" }, "weak match"));
  }
  const rest = item.text.startsWith(item.title) ? item.text.slice(item.title.length).replace(/^\.\s*/, "") : item.text;
  node.querySelector(".text").textContent = rest;
  const chips = node.querySelector(".chips");
  for (const [k, v] of Object.entries(item.attributes)) {
    // several values ("Action|Comedy") read as a list
    if (v !== null && v !== "") chips.append(el("span", { class: "chip" }, `${k} ${String(v).split("|").join(", ")}`));
  }
  if (item.audio.length) {
    const audio = el("audio", { controls: "", preload: "none", src: item.audio[0] });
    node.querySelector(".body").insertBefore(audio, node.querySelector(".explain"));
  }
  if (opts.explanation) node.querySelector(".explain").append(explanationNode(opts.explanation));
  if (opts.like) node.querySelector(".like").addEventListener("click", (e) => like(item, e.currentTarget));
  else node.querySelector(".like").remove();
  node.querySelector(".similar").addEventListener("click", () => showDetail(item.id));
  return node;
}

function fill(container, results, empty, opts = {}) {
  container.replaceChildren();
  if (!results.length) { container.append(el("div", { class: "empty" }, empty)); return; }
  for (const r of results) {
    container.append(card(r.item, {
      ...opts, score: r.score, explanation: r.explanation,
      weak: opts.weakBelow !== undefined && r.score < opts.weakBelow,
    }));
  }
}

// -- health, overview -------------------------------------------------------------------
async function loadHealth() {
  const h = await api("/health");
  state.health = h;
  $("#health").textContent = `${h.items} items · ${h.users} users · model ${h.model}`;
  state.attributes = h.attributes.length ? await api("/attributes") : [];
  buildFacets(state.attributes);
  $("#filter").placeholder = state.attributes.length >= 2
    ? `${state.attributes[0].name}>=…, ${state.attributes[1].name}<…` : $("#filter").placeholder;
  $("#filter-hint").append(h.attributes.length ? ` Attributes: ${h.attributes.join(", ")}.` : "");
}

async function loadOverview() {
  const h = state.health;
  if (!h) return;
  const stat = (label, value) => el("div", { class: "stat" }, el("span", {}, label), el("b", {}, value));
  $("#stats").replaceChildren(
    stat("Items", String(h.items)), stat("Users", String(h.users)),
    stat("Recommendations ranked by", h.model),
    stat("Search and similar items by", h.content_model),
    stat("Modalities", h.modalities.join(" + ")),
    stat("Index", `${h.index.kind} ${h.index.structure}${h.index.exact ? " (exact)" : ""}`),
    stat("Attributes", h.attributes.join(", ") || "none"),
  );
  try {
    // what this server recommended most; before its first recommendation, the popular items
    const stats = await api("/stats?k=6");
    if (stats.most_recommended.length) {
      $("#overview-title").textContent = "Most recommended items";
      $("#overview-sub").textContent = `Counted over the ${stats.answers} recommendation `
        + `answer${stats.answers === 1 ? "" : "s"} this server gave since it started `
        + `(${stats.distinct_items} different items).`;
      fill($("#overview-popular"), stats.most_recommended, "No items.", {
        scoreLabel: "recommended", count: true,
        scoreTitle: "How often the server recommended the item since it started",
      });
    } else {
      const data = await api("/items/popular?k=6");
      $("#overview-title").textContent = "Most popular items";
      $("#overview-sub").textContent = "Nothing has been recommended since the server "
        + "started, so these are the most popular items (most interacted with).";
      fill($("#overview-popular"), data.results, "No items.",
        { scoreLabel: "popularity", scoreTitle: "How much users interacted with the item" });
    }
  } catch (e) { showError(e.message); }
}

// -- users ------------------------------------------------------------------------------
async function loadUsers(fromUrl) {
  const hint = $("#user-hint");
  try {
    const data = await api("/users?limit=500");
    $("#users-list").replaceChildren(...data.users.map((u) => el("option", { value: u.id })));
    hint.textContent = `${data.total} users · type to search`;
    state.user = fromUrl || (data.users[0] && data.users[0].id) || null;
  } catch (e) {
    if (e.status === 401) {
      hint.textContent = "The user list needs the server's token (see Token below).";
      $("#token-box").open = true;
    } else hint.textContent = plain(e.message);
    state.user = fromUrl || null;
  }
  $("#user").value = state.user || "";
}

function pickUser() {
  const v = $("#user").value.trim();
  if (!v || v === state.user) return;
  state.user = v;
  syncUrl();
  refreshForYou();
}

async function loadUser() {
  const box = $("#user-card");
  state.userKnown = false;
  state.userError = null;
  if (!state.user) { box.replaceChildren(); renderHistory(null); return; }
  try {
    const u = await api(`/users/${encodeURIComponent(state.user)}`);
    state.userKnown = true;
    const pic = u.images.length ? el("img", { src: u.images[0], alt: "" })
      : el("div", { class: "avatar" }, u.id.slice(-2));
    const lines = el("div", {}, el("div", {}, `${u.n_interactions} items in history`),
      el("div", {}, u.text ? `“${u.text.slice(0, 90)}”` : "no profile text"));
    box.replaceChildren(pic, lines);
    renderHistory(u);
  } catch (e) {
    renderHistory(null);
    if (e.status === 404) box.replaceChildren(el("div", {}, `No user “${state.user}” yet.`));
    else if (e.status === 401) box.replaceChildren(el("div", {}, "Enter the token to see this user."));
    else box.replaceChildren(el("div", {}, plain(e.message)));
    state.userError = e;
  }
}

function renderHistory(u) {
  const section = $("#history");
  section.parentElement.classList.toggle("no-history", !u);
  if (!u) { section.hidden = true; return; }
  const mine = state.liked[u.id] || [];
  const ids = new Set(mine.map((x) => x.id));
  const items = mine.map((x) => ({ ...x, fresh: true })).concat(u.liked.filter((x) => !ids.has(x.id)));
  $("#history-title").textContent = `History · ${u.n_interactions} item${u.n_interactions === 1 ? "" : "s"}`;
  const list = $("#history-list");
  list.replaceChildren();
  if (!items.length) list.append(el("div", { class: "hint" }, "Nothing yet: like an item to start."));
  for (const it of items) {
    const row = el("button", { class: `hist${it.fresh ? " fresh" : ""}`, type: "button", "data-id": it.id,
      "data-testid": "history-item", title: it.title });
    row.append(it.images.length ? el("img", { src: it.images[0], alt: "", loading: "lazy" })
      : el("span", { class: "thumb" }, it.audio.length ? "♪" : "◆"));
    row.append(el("span", { class: "hist-title" }, it.title));
    if (it.fresh) row.append(el("span", { class: "liked-tag" }, "♥ liked now"));
    row.addEventListener("click", () => showDetail(it.id));
    const wrap = el("div", { class: "hist-row" }, row);
    if (it.fresh) { // a button next to the row, not inside it (no button within a button)
      const undo = el("button", { class: "undo linkish", type: "button", "data-testid": "history-undo",
        title: `Undo the like of “${it.title}”`, "aria-label": `Undo the like of ${it.title}` }, "Undo");
      undo.addEventListener("click", () => unlike(it, undo));
      wrap.append(undo);
    }
    list.append(wrap);
  }
  section.hidden = false;
}

// -- recommendations --------------------------------------------------------------------
// only the latest request may draw: an older one that answers late must not overwrite it
let recsRequest = 0;

async function loadRecs() {
  const mine = ++recsRequest;
  const stale = () => mine !== recsRequest;
  const recs = $("#recs");
  const sub = $("#recs-sub");
  const params = new URLSearchParams({ k: $("#k").value });
  for (const f of filters()) params.append("filter", f);
  const diversity = Number($("#diversity").value);
  try {
    if (state.user && state.userKnown) {
      params.set("diversity", $("#diversity").value);
      params.set("explain", $("#explain").checked);
      const data = await api(`/users/${encodeURIComponent(state.user)}/recommendations?${params}`);
      if (stale()) return;
      showError("");
      $("#recs-title").textContent = `Recommendations for ${state.user}`;
      sub.hidden = diversity <= 0;
      sub.textContent = diversity > 0 ? `Re-ranked for variety (diversity ${fmt(diversity, 2)}): `
        + "some less similar items move up so the list covers more ground." : "";
      const filtered = params.getAll("filter").length > 0;
      fill(recs, data.results, `Nothing left to recommend${filtered ? " with these filters" : ""}.`, {
        like: true, scoreLabel: "score",
        scoreTitle: `Relevance from the ranking model (${(state.health || {}).model || "?"}); higher is better`,
      });
    } else {
      const data = await api(`/items/popular?${params}`);
      if (stale()) return;
      showError("");
      $("#recs-title").textContent = "Popular items";
      const e = state.userError;
      sub.textContent = !state.user ? "Pick a user to see personal recommendations."
        : e && e.status === 401 ? "Personal recommendations need the server's token (see Token)."
          : `There is no user “${state.user}” yet, so these are the most popular items. Like one to start their history.`;
      sub.hidden = false;
      fill(recs, data.results, "No items match these filters.", {
        like: Boolean(state.user), scoreLabel: "popularity",
        scoreTitle: "How much users interacted with the item",
      });
    }
  } catch (e) {
    if (stale()) return;
    recs.replaceChildren(el("div", { class: "empty" }, "No results: see the message above."));
    showError(e.message);
  }
}

async function refreshForYou() {
  await loadUser();
  await loadRecs();
}

function needToken(text) {
  note(text, "info");
  foldPanel(false);
  $("#token-box").open = true;
  $("#token").focus();
}

async function like(item, button) {
  if (state.health && state.health.write_requires_token && !$("#token").value.trim()) {
    needToken("Liking needs the server's token: enter it in the Token box on the left.");
    return;
  }
  button.disabled = true;
  try {
    await api(`/users/${encodeURIComponent(state.user)}/feedback`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ item_id: item.id, weight: 1 }),
    });
    button.classList.add("done");
    button.textContent = "♥ Liked";
    const user = state.user;
    (state.liked[user] = state.liked[user] || []).unshift(item);
    note(`♥ Liked “${item.title}” for ${user}. It is now in the history, and the recommendations are updated.`,
      "ok", { label: "Undo", run: () => unlike(item, null, user) });
    await refreshForYou();
  } catch (e) {
    button.disabled = false;
    if (e.status === 401) needToken("The server did not accept the token: check it in the Token box on the left.");
    else showError(e.message);
  }
}

// undo a like: the server forgets that feedback (journaled), the item may be recommended again
async function unlike(item, button, user = state.user) {
  if (button) button.disabled = true;
  try {
    await api(`/users/${encodeURIComponent(user)}/feedback/${encodeURIComponent(item.id)}`,
      { method: "DELETE" });
    state.liked[user] = (state.liked[user] || []).filter((x) => x.id !== item.id);
    note(`Undone: “${item.title}” is no longer liked by ${user}.`);
    if (user === state.user) await refreshForYou();
  } catch (e) {
    if (button) button.disabled = false;
    if (e.status === 401) needToken("Undoing needs the server's token: check it in the Token box.");
    else showError(e.message);
  }
}

// -- detail, search, catalog ------------------------------------------------------------
async function showDetail(itemId) {
  const dlg = $("#detail");
  const body = $("#detail-body");
  body.replaceChildren(el("div", { class: "hint" }, "loading…"));
  if (!dlg.open) dlg.showModal();
  try {
    const data = await api(`/items/${encodeURIComponent(itemId)}/similar?k=8`);
    const it = data.item;
    const left = it.images.length ? el("img", { src: it.images[0], alt: it.title }) : el("div");
    const right = el("div", {}, el("h3", {}, it.title), el("p", {}, it.text));
    for (const a of it.audio) right.append(el("audio", { controls: "", src: a }));
    const chips = el("div", { class: "chips" });
    for (const [k, v] of Object.entries(it.attributes)) if (v !== null) chips.append(el("span", { class: "chip" }, `${k} ${v}`));
    right.append(chips);
    const grid = el("div", { class: "grid" });
    fill(grid, data.results, "No similar items.",
      { scoreLabel: "similarity", scoreTitle: "Cosine similarity of the fused content (1 = identical)" });
    body.replaceChildren(el("div", { class: "detail-top" }, left, right), el("h4", {}, "Similar items"), grid);
  } catch (e) { body.replaceChildren(el("div", { class: "msg" }, plain(e.message))); }
}

function showFile() {
  const f = $("#qfile").files[0];
  $("#qfile-chip").hidden = !f;
  $("#qfile-pick").hidden = Boolean(f);
  $("#qfile-name").textContent = f ? f.name : "";
}

async function runSearch(event) {
  if (event) event.preventDefault();
  const form = new FormData();
  const text = $("#q").value.trim();
  const file = $("#qfile").files[0];
  const results = $("#search-results");
  if (!text && !file) { showError("Type something or pick an image or audio file."); return; }
  if (text) form.append("text", text);
  if (file) form.append("file", file);
  form.append("k", "12");
  for (const f of filters()) form.append("filter", f);
  state.lastSearch = true;
  $("#search-info").textContent = "searching… (the first query loads the encoder)";
  try {
    const data = await api("/search", { method: "POST", body: form });
    showError("");
    const what = Object.entries(data.query).map(([k, v]) => `${k}: ${v}`).join(" · ");
    const strong = data.results.filter((r) => r.score >= WEAK_MATCH).length;
    $("#search-info").textContent = `Results for ${what}. The match is the cosine similarity `
      + `to your query (1 = identical); below ${WEAK_MATCH} is marked weak.`
      + (data.results.length && !strong ? " No strong matches: these are only the closest items." : "");
    fill(results, data.results, "No results.", {
      scoreLabel: "match", weakBelow: WEAK_MATCH,
      scoreTitle: "Cosine similarity between the query and the item (1 = identical)",
    });
  } catch (e) {
    results.replaceChildren();
    $("#search-info").textContent = "";
    showError(e.message);
  }
}

let catalogRequest = 0;

async function loadCatalog(reset = false) {
  const mine = ++catalogRequest;
  if (reset) { state.catalogOffset = 0; $("#catalog").replaceChildren(); }
  const params = new URLSearchParams({ offset: state.catalogOffset, limit: 24 });
  for (const f of filters()) params.append("filter", f);
  try {
    const data = await api(`/items?${params}`);
    if (mine !== catalogRequest) return;  // a newer listing was asked for meanwhile
    showError("");
    for (const it of data.items) $("#catalog").append(card(it));
    state.catalogOffset += data.items.length;
    $("#catalog-info").textContent = `${data.total} item${data.total === 1 ? "" : "s"}`
      + (params.getAll("filter").length ? " match the filters" : " in the catalog");
    $("#more").hidden = state.catalogOffset >= data.total;
  } catch (e) {
    if (mine !== catalogRequest) return;
    $("#catalog").replaceChildren();
    $("#catalog-info").textContent = "";
    $("#more").hidden = true;
    showError(e.message);
  }
}

function switchTab(name) {
  state.tab = name;
  document.querySelectorAll(".tab").forEach((t) => {
    t.classList.toggle("active", t.dataset.tab === name);
    t.setAttribute("aria-selected", t.dataset.tab === name);
  });
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${name}`; });
  document.body.dataset.tab = name; // the stylesheet hides the sidebar parts that do not apply
  showError("");
  syncUrl();
  if (name === "catalog" && !$("#catalog").children.length) loadCatalog(true);
  if (name === "overview") loadOverview();
}

// the options fold away on a phone only (the stylesheet ignores the state on wider screens)
function foldPanel(folded) {
  $("#panel").classList.toggle("open", !folded);
  $("#panel-toggle").setAttribute("aria-expanded", String(!folded));
}

function debounced(fn, ms = 200) {
  return () => { clearTimeout(state.timer); state.timer = setTimeout(fn, ms); };
}

async function main() {
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => switchTab(t.dataset.tab)));
  $("#user").addEventListener("change", pickUser);
  $("#user").addEventListener("keydown", (e) => { if (e.key === "Enter") pickUser(); });
  $("#diversity").addEventListener("input", () => {
    $("#div-out").textContent = fmt($("#diversity").value, 2); syncUrl(); debounced(loadRecs)();
  });
  $("#k").addEventListener("change", () => { syncUrl(); loadRecs(); });
  $("#explain").addEventListener("change", () => { syncUrl(); loadRecs(); });
  $("#filter").addEventListener("change", filtersChanged);
  $("#clear-filters").addEventListener("click", () => {
    $("#facets").querySelectorAll("input, select").forEach((c) => { c.value = ""; });
    $("#filter").value = "";
    filtersChanged();
  });
  $("#search-form").addEventListener("submit", runSearch);
  $("#qfile").addEventListener("change", showFile);
  $("#qfile-remove").addEventListener("click", () => { $("#qfile").value = ""; showFile(); $("#q").focus(); });
  $("#more").addEventListener("click", () => loadCatalog());
  $("#note .note-close").addEventListener("click", () => note(""));
  $("#panel-toggle").addEventListener("click", () => foldPanel($("#panel").classList.contains("open")));
  $("#token").value = localStorage.getItem(TOKEN_KEY) || "";
  $("#token").addEventListener("input", () => {
    const t = $("#token").value.trim();
    if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
  });
  $("#token").addEventListener("change", () => {
    const t = $("#token").value.trim();
    if (t && $("#note").classList.contains("info")) note("");
    loadUsers(state.user).then(refreshForYou);
  });
  $("#forget-token").addEventListener("click", () => {
    $("#token").value = ""; localStorage.removeItem(TOKEN_KEY);
  });
  try {
    await loadHealth();
    if (state.health.write_requires_token && !$("#token").value) $("#token-box").open = true;
    const wanted = restoreFromUrl();
    switchTab(wanted.tab);
    await loadUsers(wanted.user);
    syncUrl();
    await refreshForYou();
  } catch (e) { showError(`Cannot reach the server: ${e.message}`); }
}

main();
