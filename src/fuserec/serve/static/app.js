// fuserec web page: plain JS over the JSON API of the same app.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { user: null, catalogOffset: 0, health: null, timer: null };
const MOD_LABEL = { text: "text", image: "image", audio: "audio" };

async function api(path, options = {}) {
  const headers = options.headers || {};
  const token = $("#token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

function message(text, ok = false) {
  const el = $("#msg");
  if (!text) { el.hidden = true; return; }
  el.textContent = text;
  el.className = ok ? "msg ok" : "msg";
  el.hidden = false;
  if (ok) setTimeout(() => { el.hidden = true; }, 2500);
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

function filters() {
  return $("#filter").value.split(/[,;]/).map((s) => s.trim()).filter(Boolean);
}

function explanationNode(exp) {
  const wrap = el("div");
  const parts = Object.entries(exp.modalities);
  const pos = parts.map(([, v]) => Math.max(v, 0));
  const total = pos.reduce((a, b) => a + b, 0) || 1;
  const bar = el("div", { class: "bar", title: "each modality's share of the score" });
  const legend = el("div", { class: "legend" });
  parts.forEach(([m, v], i) => {
    const seg = el("span", { class: m });
    seg.style.width = `${(100 * pos[i]) / total}%`;
    bar.append(seg);
    const key = el("i"); key.style.background = `var(--${m})`;
    legend.append(el("span", {}, key, `${MOD_LABEL[m] || m} ${fmt(v)}`));
  });
  wrap.append(bar, legend);
  if (exp.because_you_liked && exp.because_you_liked.length) {
    const names = exp.because_you_liked.slice(0, 2).map((x) => x.title);
    const p = el("div", { class: "because" }, "Because you liked ");
    names.forEach((n, i) => { p.append(el("b", {}, n)); if (i < names.length - 1) p.append(" and "); });
    wrap.append(p);
  }
  return wrap;
}

function card(item, score, explanation) {
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
  const scoreEl = node.querySelector(".score");
  if (score === undefined || score === null) scoreEl.remove(); else scoreEl.textContent = fmt(score);
  const rest = item.text.startsWith(item.title) ? item.text.slice(item.title.length).replace(/^\.\s*/, "") : item.text;
  node.querySelector(".text").textContent = rest;
  const chips = node.querySelector(".chips");
  for (const [k, v] of Object.entries(item.attributes)) {
    if (v !== null && v !== "") chips.append(el("span", { class: "chip" }, `${k} ${v}`));
  }
  if (item.audio.length) {
    const audio = el("audio", { controls: "", preload: "none", src: item.audio[0] });
    node.querySelector(".body").insertBefore(audio, node.querySelector(".explain"));
  }
  if (explanation) node.querySelector(".explain").append(explanationNode(explanation));
  node.querySelector(".like").addEventListener("click", (e) => like(item.id, e.currentTarget));
  node.querySelector(".similar").addEventListener("click", () => showDetail(item.id));
  return node;
}

function fill(container, results, empty) {
  container.replaceChildren();
  if (!results.length) { container.append(el("div", { class: "empty" }, empty)); return; }
  for (const r of results) container.append(card(r.item, r.score, r.explanation));
}

async function loadHealth() {
  const h = await api("/health");
  state.health = h;
  $("#health").textContent = `${h.items} items · ${h.users} users · ${h.index.kind} ${h.index.structure} · ${h.modalities.join(" + ")}`;
  $("#filter-hint").textContent = h.attributes.length ? `attributes: ${h.attributes.join(", ")}` : "";
  if (h.write_requires_token) $(".token").open = true;
}

async function loadUsers() {
  const data = await api("/users?limit=500");
  const select = $("#user");
  select.replaceChildren(...data.users.map((u) => el("option", { value: u.id }, u.id)));
  const fromUrl = new URLSearchParams(location.search).get("user");
  if (fromUrl) {
    if (![...select.options].some((o) => o.value === fromUrl)) select.append(el("option", { value: fromUrl }, fromUrl));
    select.value = fromUrl;
  }
  state.user = select.value;
}

async function loadUser() {
  const box = $("#user-card");
  try {
    const u = await api(`/users/${encodeURIComponent(state.user)}`);
    const pic = u.images.length ? el("img", { src: u.images[0], alt: "" })
      : el("div", { class: "avatar" }, u.id.slice(-2));
    const lines = el("div", {}, el("div", {}, `${u.n_interactions} items liked`),
      el("div", {}, u.text ? `“${u.text.slice(0, 90)}”` : "no profile text"));
    box.replaceChildren(pic, lines);
  } catch (e) { box.replaceChildren(el("div", {}, e.message)); }
}

async function loadRecs() {
  if (!state.user) return;
  const params = new URLSearchParams({
    k: $("#k").value, diversity: $("#diversity").value, explain: $("#explain").checked,
  });
  for (const f of filters()) params.append("filter", f);
  $("#recs-title").textContent = `Recommendations for ${state.user}`;
  try {
    const data = await api(`/users/${encodeURIComponent(state.user)}/recommendations?${params}`);
    message("");
    fill($("#recs"), data.results, "Nothing left to recommend with these filters.");
  } catch (e) { message(e.message); }
}

async function like(itemId, button) {
  try {
    await api(`/users/${encodeURIComponent(state.user)}/feedback`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ item_id: itemId, weight: 1 }),
    });
    button.classList.add("done");
    message(`Noted: ${state.user} likes ${itemId}. Recommendations updated.`, true);
    await Promise.all([loadRecs(), loadUser()]);
  } catch (e) { message(e.message); }
}

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
    fill(grid, data.results, "No similar items.");
    body.replaceChildren(el("div", { class: "detail-top" }, left, right), el("h4", {}, "Similar items"), grid);
  } catch (e) { body.replaceChildren(el("div", { class: "msg" }, e.message)); }
}

async function runSearch(event) {
  event.preventDefault();
  const form = new FormData();
  const text = $("#q").value.trim();
  const file = $("#qfile").files[0];
  if (!text && !file) { message("Type something or pick an image or audio file."); return; }
  if (text) form.append("text", text);
  if (file) form.append("file", file);
  form.append("k", "12");
  for (const f of filters()) form.append("filter", f);
  $("#search-info").textContent = "searching… (the first query loads the encoder)";
  try {
    const data = await api("/search", { method: "POST", body: form });
    message("");
    const what = Object.entries(data.query).map(([k, v]) => `${k}: ${v}`).join(" · ");
    $("#search-info").textContent = `Results for ${what}`;
    fill($("#search-results"), data.results, "No results.");
  } catch (e) { $("#search-info").textContent = ""; message(e.message); }
}

async function loadCatalog(reset = false) {
  if (reset) { state.catalogOffset = 0; $("#catalog").replaceChildren(); }
  const params = new URLSearchParams({ offset: state.catalogOffset, limit: 24 });
  for (const f of filters()) params.append("filter", f);
  try {
    const data = await api(`/items?${params}`);
    for (const it of data.items) $("#catalog").append(card(it));
    state.catalogOffset += data.items.length;
    $("#more").hidden = state.catalogOffset >= data.total;
  } catch (e) { message(e.message); }
}

function switchTab(name) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.tab === name));
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${name}`; });
  if (name === "catalog" && !$("#catalog").children.length) loadCatalog(true);
}

function debounced(fn, ms = 200) {
  return () => { clearTimeout(state.timer); state.timer = setTimeout(fn, ms); };
}

async function main() {
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => switchTab(t.dataset.tab)));
  $("#user").addEventListener("change", () => { state.user = $("#user").value; loadUser(); loadRecs(); });
  $("#diversity").addEventListener("input", () => { $("#div-out").textContent = fmt($("#diversity").value, 2); debounced(loadRecs)(); });
  $("#k").addEventListener("change", loadRecs);
  $("#explain").addEventListener("change", loadRecs);
  $("#filter").addEventListener("change", () => { loadRecs(); if (!$("#view-catalog").hidden) loadCatalog(true); else $("#catalog").replaceChildren(); });
  $("#search-form").addEventListener("submit", runSearch);
  $("#qfile").addEventListener("change", () => {
    const f = $("#qfile").files[0];
    $("#qfile-label").textContent = f ? f.name : "＋ image or audio";
  });
  $("#more").addEventListener("click", () => loadCatalog());
  try {
    await loadHealth();
    await loadUsers();
    await Promise.all([loadUser(), loadRecs()]);
  } catch (e) { message(`Cannot reach the server: ${e.message}`); }
}

main();
