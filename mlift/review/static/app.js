// mlift review: browse, filter, search and label pairs; compare run folders blind.
// Every text from the data goes into the page through textContent (never as HTML),
// so a pair whose text is "<script>" shows as those characters.
"use strict";

const TOKEN = document.querySelector('meta[name="mlift-token"]').content;
const FLAG_KEYS = { s: "not_self_contained", g: "gives_away", u: "unnatural",
                    w: "wrong_language", m: "mismatch" };
const PAGE = 200;

const state = {
  info: null,          // /api/state
  items: [],           // summaries shown in the list
  total: 0,
  current: -1,         // index into items
  pair: null,          // the full pair shown
  draft: null,         // {score, flags:Set, note}
  blind: null,         // the comparison shown
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function toast(message, bad = false) {
  const t = $("toast");
  t.textContent = message;
  t.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, bad ? 6000 : 2000);
}

async function api(path, body) {
  const init = { headers: { "X-Mlift-Token": TOKEN } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function labeller() {
  return $("labeller").value.trim() || state.info.labeller;
}

// ---------------------------------------------------------------- routing

function params() {
  const hash = location.hash.slice(1);
  const [view, query] = hash.split("?");
  return { view: view || "browse", query: new URLSearchParams(query || "") };
}

function setHash(view, query) {
  const text = query && query.toString() ? `#${view}?${query}` : `#${view}`;
  if (location.hash !== text) history.replaceState(null, "", text);
}

async function route() {
  const { view, query } = params();
  const compare = view === "compare" && state.info.blind.items > 0;
  $("browse").hidden = compare;
  $("compare").hidden = !compare;
  $("tab-browse").classList.toggle("active", !compare);
  $("tab-compare").classList.toggle("active", compare);
  if (!compare && view === "compare") setHash("browse", query);  // nothing to compare
  if (compare) {
    // Nothing that names a run stays in the page while comparing blind.
    for (const id of ["f-run", "list", "detail", "blind-results"]) $(id).replaceChildren();
    $("blind-results").hidden = true;
    $("count").textContent = "";
    await loadBlind();
  } else {
    fillRuns();
    await applyQuery(query);
  }
}

// ---------------------------------------------------------------- browse

const FILTERS = { run: "f-run", lang: "f-lang", task: "f-task", status: "f-status",
                  score: "f-score", labelled: "f-labelled", q: "f-q" };

function fillOptions(select, values, allLabel) {
  const keep = select.value;
  select.replaceChildren(el("option", { value: "", text: allLabel }),
                         ...values.map((v) => el("option", { value: v, text: v })));
  select.value = values.includes(keep) ? keep : "";
}

function fillRuns() {
  if ($("f-run").options.length) return;
  $("f-run").replaceChildren(...state.info.runs.map((r) =>
    el("option", { value: String(r.index), text: `${r.name} (${r.kind}, ${r.count})` })));
}

function runInfo() {
  return state.info.runs[Number($("f-run").value || 0)];
}

async function applyQuery(query) {
  for (const [key, id] of Object.entries(FILTERS)) {
    if (key === "run") $(id).value = query.get("run") || "0";
    else if (key !== "lang" && key !== "task") $(id).value = query.get(key) || "";
  }
  const run = runInfo();
  fillOptions($("f-lang"), run.langs, "all languages");
  fillOptions($("f-task"), run.tasks, "all tasks");
  $("f-lang").value = run.langs.includes(query.get("lang")) ? query.get("lang") : "";
  $("f-task").value = run.tasks.includes(query.get("task")) ? query.get("task") : "";
  await loadList(query.get("id"));
}

function filterQuery() {
  const query = new URLSearchParams();
  for (const [key, id] of Object.entries(FILTERS)) {
    const value = $(id).value.trim();
    if (value && !(key === "run" && value === "0")) query.set(key, value);
  }
  return query;
}

async function loadList(wantId) {
  // Filters changed quickly send several lists: only the newest may be shown.
  const seq = (state.listSeq = (state.listSeq || 0) + 1);
  const query = filterQuery();
  query.set("labeller", labeller());
  query.set("limit", PAGE);
  if (!query.has("run")) query.set("run", "0");
  const data = await api(`/api/pairs?${query}`);
  if (seq !== state.listSeq) return;
  state.items = data.items;
  state.total = data.total;
  renderList();
  let index = wantId ? state.items.findIndex((p) => p.id === wantId) : -1;
  if (index < 0 && state.items.length) index = 0;
  await select(index);
}

async function loadMore() {
  if (state.items.length >= state.total) return false;
  const seq = state.listSeq;
  const query = filterQuery();
  if (!query.has("run")) query.set("run", "0");
  query.set("labeller", labeller());
  query.set("offset", state.items.length);
  query.set("limit", PAGE);
  const data = await api(`/api/pairs?${query}`);
  if (seq !== state.listSeq) return false;  // the filters changed meanwhile
  state.items.push(...data.items);
  renderList();
  return data.items.length > 0;
}

function statusTag(status) {
  return el("span", { class: `tag st-${status}`, text: status });
}

function renderList() {
  const list = $("list");
  list.replaceChildren(...state.items.map((p, i) => el("li", {
    class: i === state.current ? "item current" : "item", "data-id": p.id,
    onclick: () => select(i),
  },
  el("div", { class: "meta" },
     el("span", { class: "pid", text: p.id }), " ",
     el("span", { class: "tag", text: p.lang || "?" }), " ",
     p.task ? el("span", { class: "tag", text: p.task }) : null, " ",
     statusTag(p.status), " ",
     p.score !== null ? el("span", { class: "score", text: `judge ${p.score}` }) : null,
     p.mine_done ? el("span", { class: "mine", text: p.mine !== null ? `mine ${p.mine}` : "labelled" }) : null,
     p.labels ? el("span", { class: "muted", text: ` ${p.labels}✎` }) : null),
  el("div", { class: "snippet", dir: "auto", text: p.text }))));
  if (state.items.length < state.total) {
    list.append(el("li", { class: "more" }, el("button", {
      type: "button", text: `load more (${state.total - state.items.length} left)`,
      onclick: () => loadMore(),
    })));
  }
  $("count").textContent = `${state.total} pair${state.total === 1 ? "" : "s"}`;
}

async function select(index) {
  state.current = index;
  state.pair = null;   // label keys wait until this pair is shown
  state.draft = null;
  const ticket = (state.ticket = (state.ticket || 0) + 1);
  for (const [i, node] of [...$("list").children].entries()) {
    node.classList.toggle("current", i === index);
  }
  const query = filterQuery();
  if (index < 0) {
    $("detail").replaceChildren(el("p", { class: "muted", text: "No pair matches." }));
    delete $("detail").dataset.id;
    setHash("browse", query);
    return;
  }
  const summary = state.items[index];
  const data = await api(`/api/pair?run=${runInfo().index}&id=${encodeURIComponent(summary.id)}`);
  if (ticket !== state.ticket) return;  // the labeller has moved on meanwhile
  state.pair = data;
  const mine = data.labels.find((l) => l.labeller === labeller());
  state.draft = { score: mine ? mine.score : null, flags: new Set(mine ? mine.flags : []),
                  note: mine ? mine.note : "", saved: mine || null };
  renderDetail();
  query.set("id", summary.id);
  setHash("browse", query);
  $("list").children[index]?.scrollIntoView({ block: "nearest" });
}

function block(title, text, lang) {
  if (text === null || text === undefined || text === "") return null;
  return el("section", { class: "block" }, el("h3", { text: title }),
            el("div", { class: "text", dir: "auto", lang: lang || "", text }));
}

function renderDetail() {
  const p = state.pair.pair;
  const d = state.draft;
  const facts = [["id", p.id], ["language", p.lang], ["task", p.task], ["style", p.style],
                 ["length", p.length_hint], ["template", p.template], ["judge", p.judge]]
    .filter(([, v]) => v);
  const src = p.source ? [p.source.file, p.source.line, p.source.dataset].filter((v) => v !== null && v !== undefined).join(" · ") : "";
  const judged = p.score !== null
    ? el("section", { class: "block judge" }, el("h3", { text: `Judge score ${p.score}` }),
         el("div", { class: "text", text: p.reason || "(no reason)" }))
    : null;
  const reject = p.reject
    ? el("section", { class: "block reject" }, el("h3", { text: `Rejected at ${p.reject.stage}: ${p.reject.code}` }),
         el("div", { class: "text", text: p.reject.detail }))
    : null;
  const context = p.context
    ? Object.entries(p.context).map(([k, v]) => block(`Context: ${k}`, v, p.lang)) : [];
  $("detail").replaceChildren(...[
    el("div", { class: "facts" }, statusTag(p.status),
       ...facts.map(([k, v]) => el("span", { class: "fact" }, el("b", { text: `${k} ` }), v)),
       src ? el("span", { class: "fact" }, el("b", { text: "source " }), src) : null),
    block(`Instruction (${p.lang || "?"})`, p.instruction, p.lang),
    block("Instruction (English)", p.instruction_en, "en"),
    ...context,
    block(`Response (original, ${p.lang || "?"})`, p.response, p.lang),
    judged, reject,
    p.response_en && p.lang !== "en"
      ? el("details", { class: "block" }, el("summary", { text: "Response (English)" }),
           el("div", { class: "text", dir: "auto", text: p.response_en }))
      : null,
    labelForm(d),
    otherLabels(state.pair.labels)].filter((node) => node));
  $("detail").dataset.id = p.id;
}

function labelForm(d) {
  const scores = el("div", { class: "scores", role: "group", "aria-label": "your score" },
    ...[1, 2, 3, 4, 5].map((s) => el("button", {
      type: "button", class: d.score === s ? "on" : "", "data-score": s, text: String(s),
      onclick: () => { d.score = d.score === s ? null : s; renderDetail(); },
    })));
  const keyOf = Object.fromEntries(Object.entries(FLAG_KEYS).map(([k, f]) => [f, k]));
  const flags = el("div", { class: "flags" }, ...Object.entries(state.info.flags).map(([code, text]) =>
    el("label", { class: d.flags.has(code) ? "flag on" : "flag" },
       el("input", { type: "checkbox", "data-flag": code,
                     ...(d.flags.has(code) ? { checked: "" } : {}),
                     onchange: (e) => { if (e.target.checked) d.flags.add(code); else d.flags.delete(code); renderDetail(); } }),
       ` ${text} `, el("kbd", { text: keyOf[code] || "" }))));
  const note = el("textarea", { id: "note", rows: "2", placeholder: "note (n)", dir: "auto" });
  note.value = d.note;
  note.addEventListener("input", () => { d.note = note.value; });
  const saved = d.saved
    ? el("span", { class: "muted", id: "saved-at", text: `saved ${d.saved.at} as ${d.saved.labeller}` })
    : el("span", { class: "muted", id: "saved-at", text: "not labelled by you yet" });
  return el("section", { class: "block label", id: "label-form" }, el("h3", { text: "Your label" }),
            scores, flags, note,
            el("div", {}, el("button", { type: "button", id: "save", onclick: () => save(false), text: "Save (Enter)" }), " ", saved));
}

function otherLabels(labels) {
  const others = labels.filter((l) => l.labeller !== labeller());
  if (!others.length) return null;
  return el("section", { class: "block others" }, el("h3", { text: "Other labellers" }),
    el("ul", {}, ...others.map((l) => el("li", {},
      el("b", { text: l.labeller }), ` — ${l.score ?? "no score"}`,
      l.flags.length ? ` — ${l.flags.map((f) => state.info.flags[f] || f).join(", ")}` : "",
      l.note ? el("div", { class: "text", dir: "auto", text: l.note }) : null,
      el("span", { class: "muted", text: ` ${l.at}` })))));
}

async function save(advance) {
  if (!state.pair || !state.draft) return;
  const d = state.draft;
  const summary = state.items[state.current];
  try {
    const data = await api("/api/label", {
      run: state.pair.run, id: state.pair.pair.id, labeller: labeller(), score: d.score,
      flags: [...d.flags], note: d.note });
    d.saved = data.saved;
    summary.mine = data.saved.score;
    if (!summary.mine_done) { summary.mine_done = true; summary.labels += 1; }
    renderList();
    toast(`saved: ${state.pair.pair.id}`);
    if (advance) await move(1); else if (state.draft === d) renderDetail();
  } catch (err) {
    toast(`not saved: ${err.message}`, true);
  }
}

async function move(step) {
  let next = state.current + step;
  if (next >= state.items.length && !(await loadMore())) next = state.items.length - 1;
  if (next < 0) next = 0;
  if (next !== state.current) await select(next);
}

// ---------------------------------------------------------------- compare

async function loadBlind() {
  const data = await api(`/api/blind?labeller=${encodeURIComponent(labeller())}`);
  state.blind = data.item;
  $("blind-progress").textContent = `${data.done} of ${data.total} compared`;
  const sides = $("blind-sides");
  document.querySelector(".choices").hidden = !data.item;
  if (!data.item) {
    $("blind-lang").textContent = "";
    sides.replaceChildren(el("p", { class: "muted", text: "All comparisons done. Thank you." }));
    return;
  }
  $("blind-lang").textContent = data.item.lang;
  sides.replaceChildren(...data.item.sides.map((s, i) => el("article", { class: "side" },
    el("h2", { text: i === 0 ? "Left" : "Right" }),
    block("Instruction", s.instruction, data.item.lang),
    block("Response", s.response, data.item.lang))));
}

async function choose(choice) {
  if (!state.blind) return;
  try {
    await api("/api/blind", { key: state.blind.key, choice, labeller: labeller() });
    toast("choice saved");
    await loadBlind();
  } catch (err) {
    toast(`not saved: ${err.message}`, true);
  }
}

async function showResults() {
  const data = await api("/api/blind/results");
  const box = $("blind-results");
  const pct = (x) => `${Math.round(100 * x)}%`;
  const rate = (r) => (r.a_rate === null ? "–"
    : `${pct(r.a_rate)} [${pct(r.a_rate_95[0])}–${pct(r.a_rate_95[1])}]`);
  const head = el("tr", {}, ...["language", "A", "B", "A wins", "B wins", "ties",
                                "A preferred"].map((h) => el("th", { text: h })));
  const rows = data.rates.map((r) => el("tr", {},
    el("td", { text: r.lang }),
    el("td", { text: `${r.a} (${data.kinds[r.a]})` }),
    el("td", { text: `${r.b} (${data.kinds[r.b]})` }),
    el("td", { text: String(r.a_wins) }),
    el("td", { text: String(r.b_wins) }),
    el("td", { text: String(r.ties) }),
    el("td", { text: rate(r) })));
  box.replaceChildren(
    el("h2", { text: "Win rates (95% Wilson interval; ties left out of the rate)" }),
    rows.length ? el("table", {}, head, ...rows) : el("p", { class: "muted", text: "No choices yet." }));
  box.hidden = false;
}

// ---------------------------------------------------------------- keys

function typing(target) {
  return target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

async function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) {
    if (e.key === "Enter" && e.target.id === "note") { e.preventDefault(); await save(true); }
    return;
  }
  if (typing(e.target)) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  if (e.key === "?") { $("help").open ? $("help").close() : $("help").showModal(); return; }
  if (e.key === "c") { state.browseHash = location.hash; location.hash = "#compare"; return; }
  if (e.key === "b") { location.hash = state.browseHash || "#browse"; return; }
  if (!$("compare").hidden) {
    if (e.key === "1" || e.key === "ArrowLeft") await choose(0);
    else if (e.key === "2" || e.key === "ArrowRight") await choose(1);
    else if (e.key === "t") await choose("tie");
    return;
  }
  const d = state.draft;
  if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); await move(1); }
  else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); await move(-1); }
  else if (e.key === "/") { e.preventDefault(); $("f-q").focus(); }
  else if (!d) return;
  else if ("12345".includes(e.key)) { d.score = Number(e.key); renderDetail(); }
  else if (e.key === "0") { d.score = null; renderDetail(); }
  else if (FLAG_KEYS[e.key]) {
    const f = FLAG_KEYS[e.key];
    if (d.flags.has(f)) d.flags.delete(f); else d.flags.add(f);
    renderDetail();
  } else if (e.key === "n") { e.preventDefault(); $("note").focus(); }
  else if (e.key === "Enter") { e.preventDefault(); await save(true); }
}

// ---------------------------------------------------------------- start

async function start() {
  state.info = await api("/api/state");
  const stored = localStorage.getItem("mlift-labeller");
  $("labeller").value = stored || state.info.labeller;
  $("labeller").addEventListener("change", () => {
    localStorage.setItem("mlift-labeller", labeller());
    route();
  });
  const refilter = () => loadList(null).catch((err) => toast(err.message, true));
  let typingTimer = null;
  for (const id of Object.values(FILTERS)) {
    $(id).addEventListener(id === "f-q" ? "input" : "change", () => {
      if (id === "f-run") { applyQuery(filterQuery()).catch((err) => toast(err.message, true)); return; }
      if (id !== "f-q") { refilter(); return; }
      clearTimeout(typingTimer);  // search once typing pauses
      typingTimer = setTimeout(refilter, 250);
    });
  }
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  if (!state.info.blind.items) {
    $("tab-compare").classList.add("disabled");
    $("tab-compare").title = "give two or three run folders with a language in common";
  }
  $("choose-left").addEventListener("click", () => choose(0));
  $("choose-right").addEventListener("click", () => choose(1));
  $("choose-tie").addEventListener("click", () => choose("tie"));
  $("blind-results-button").addEventListener("click", showResults);
  $("help-button").addEventListener("click", () => $("help").showModal());
  $("help-close").addEventListener("click", () => $("help").close());
  document.addEventListener("keydown", (e) => { onKey(e).catch((err) => toast(err.message, true)); });
  window.addEventListener("hashchange", () => route().catch((err) => toast(err.message, true)));
  await route();
  document.body.dataset.ready = "1";
}

start().catch((err) => toast(`could not load: ${err.message}`, true));
