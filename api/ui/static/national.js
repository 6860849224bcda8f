// National steering: choropleth per department (tension / free places / stale declarations),
// with the Métropole de Lyon as its own marker on the Rhône; a sortable table with one row per
// competent authority; free places over time (an SVG chart drawn here); CSV export of the
// table. Aggregates only: the page reads GET /v1/stats/departments (the map),
// /v1/stats/authorities (the table, the marker) and /v1/stats/history, and refreshes on the
// national feed.

import {
  AUTHORITY_ROLES,
  CATEGORIES,
  announce,
  api,
  coalesce,
  el,
  explain,
  fmt,
  hideAlert,
  pageData,
  requireSession,
  session,
  showAlert,
  svgEl,
} from "./common.js";
import { LiveFeed, feedPosition } from "./live.js";
import { classOf, franceSvg, metroProjection } from "./map.js";

const PAGE = pageData();
const $ = (id) => document.getElementById(id);
const alertBox = $("alerte-page");
const announcer = $("annonces");
const AUTHORITIES = new Map(PAGE.authorities.map((a, i) => [a.code, { ...a, order: i }]));
/** department → codes of its authorities, the Métropole first (69 → 69M, 69D; 2A → 20R). */
const OF_DEPARTMENT = new Map();
for (const a of [...PAGE.authorities].sort((x, y) => (x.kind === "departement") - (y.kind === "departement"))) {
  for (const d of a.departments) OF_DEPARTMENT.set(d, [...(OF_DEPARTMENT.get(d) || []), a.code]);
}
const MARKED = new Set(PAGE.markers.map((m) => m.code)); // drawn as a marker, not a shape

const free = (d) => d.available + d.carer_places_available;
const staleShare = (d) => (d.declarations ? d.stale_declarations / d.declarations : null);

// Sequential palettes (ColorBrewer), light = low; each with the text colour readable on it.
const MODES = {
  tension: {
    title: "Tension (occupation des places ouvertes ; la liste d'attente est comptée par enfant, avec le secret statistique, plus bas)",
    value: (d) => d.tension,
    thresholds: [0.9, 0.94, 0.97, 1.0],
    colors: ["#ffffb2", "#fecc5c", "#fd8d3c", "#e31a1c", "#800026"],
    label: (lo, hi) => (lo === null ? `moins de ${fmt.dec(hi)}` : hi === null ? `${fmt.dec(lo)} et plus` : `${fmt.dec(lo)} à ${fmt.dec(hi)}`),
    show: (d) => fmt.dec(d.tension),
  },
  libres: {
    title: "Places libres (établissements et assistants familiaux)",
    value: (d) => (d.open_places ? free(d) : null),
    thresholds: null, // quantiles of the day
    colors: ["#f7fcf5", "#c7e9c0", "#74c476", "#31a354", "#006d2c"],
    label: (lo, hi) => (lo === null ? `moins de ${fmt.n(hi)}` : hi === null ? `${fmt.n(lo)} et plus` : `${fmt.n(lo)} à ${fmt.n(hi - 1)}`),
    show: (d) => fmt.n(free(d)),
  },
  perimees: {
    title: "Part des déclarations périmées",
    value: staleShare,
    thresholds: [0.05, 0.1, 0.2, 0.4],
    colors: ["#f2f0f7", "#cbc9e2", "#9e9ac8", "#756bb1", "#54278f"],
    label: (lo, hi) => (lo === null ? `moins de ${pct(hi)}` : hi === null ? `${pct(lo)} et plus` : `${pct(lo)} à ${pct(hi)}`),
    show: (d) => `${fmt.n(d.stale_declarations)} (${d.declarations ? pct(staleShare(d)) : "—"})`,
  },
};
const DARK_FROM = 3; // classes 3 and 4 are dark: white text on them

function pct(v) {
  return `${Math.round(v * 100)} %`;
}

const state = {
  stats: null, // /v1/stats/departments: the map
  byCode: new Map(), // department → its row
  authorities: null, // /v1/stats/authorities: the table, the markers
  byAuthority: new Map(), // authority → its row
  position: null, // the national feed's position the last snapshot is consistent with
  mode: "tension",
  sort: { key: "authority", dir: 1 },
  selected: "", // "" (France), "authority:69M" or "department:69"
  history: null,
  changed: new Map(), // department → until (ms)
  changedAuthorities: new Map(), // authority → until (ms)
};

/** What the selection is: {kind: "authority" | "department", code}, or null for France. */
function parseKey(key) {
  const [kind, code] = key ? key.split(":") : [];
  return kind && code ? { kind, code } : null;
}

/**
 * A department clicked on the map: the authority itself when it is the department's only one
 * and has no other department (38, 75…: the same figures), else the department (2A, 67, 69).
 */
function keyOfDepartment(code) {
  const codes = OF_DEPARTMENT.get(code) || [];
  const only = codes.length === 1 ? AUTHORITIES.get(codes[0]) : null;
  return only && only.departments.length === 1 ? `authority:${only.code}` : `department:${code}`;
}

function scopeName(key) {
  const scope = parseKey(key);
  if (!scope) return "France entière";
  const row = scope.kind === "authority" ? state.byAuthority.get(scope.code) : state.byCode.get(scope.code);
  const name = row?.name || (scope.kind === "authority" ? AUTHORITIES.get(scope.code)?.name : null) || scope.code;
  return `${name} (${scope.code})`;
}

function changedRows(before, after, until) {
  const changed = [];
  for (const [code, d] of after) {
    const old = before.get(code);
    if (old && (free(old) !== free(d) || old.tension !== d.tension || old.stale_declarations !== d.stale_declarations)) {
      changed.push(d);
      until.set(code, Date.now() + 4000);
    }
  }
  return changed;
}

// --- data ----------------------------------------------------------------------------------

/** Both views of the figures; returns the authorities whose figures changed (for the news). */
async function loadStats() {
  const [response, authorities] = await Promise.all([api("/v1/stats/departments", { raw: true }), api("/v1/stats/authorities")]);
  // The national feed's position this snapshot is consistent with (it may come from a
  // standby a little behind): the live feed starts after it (LiveFeed.startAfter).
  state.position = feedPosition(response.headers.get("Places-Feed-Position"), "national");
  const departments = await response.json();
  state.stats = departments;
  state.authorities = authorities;
  const before = state.byCode;
  state.byCode = new Map(departments.items.map((d) => [d.department, d]));
  changedRows(before, state.byCode, state.changed);
  const beforeAuthorities = state.byAuthority;
  state.byAuthority = new Map(authorities.items.map((a) => [a.authority, a]));
  const changed = changedRows(beforeAuthorities, state.byAuthority, state.changedAuthorities);
  $("genere").textContent = `Chiffres du ${fmt.dateTime(authorities.generated_at)}.`;
  return changed;
}

async function loadHistory() {
  const days = $("g-jours").value;
  const scope = parseKey(state.selected);
  const query = scope ? `?${scope.kind}=${encodeURIComponent(scope.code)}&days=${days}` : `?days=${days}`;
  state.history = await api(`/v1/stats/history${query}`);
}

// --- map -----------------------------------------------------------------------------------

function thresholdsFor(mode) {
  if (mode.thresholds) return mode.thresholds;
  const values = state.stats.items.map(mode.value).filter((v) => v !== null).sort((a, b) => a - b);
  if (!values.length) return [1, 2, 3, 4];
  const q = (p) => values[Math.min(values.length - 1, Math.floor(p * values.length))];
  const cuts = [q(0.2), q(0.4), q(0.6), q(0.8)].map((v, i) => Math.max(Math.ceil(v), i + 1));
  for (let i = 1; i < cuts.length; i += 1) if (cuts[i] <= cuts[i - 1]) cuts[i] = cuts[i - 1] + 1;
  return cuts;
}

/** The class of a row in the current mode, or null (no offer: no colour). */
function classFor(row, mode, thresholds) {
  const d = row && row.open_places > 0 ? row : null;
  const value = d ? mode.value(d) : null;
  return value === null || value === undefined ? null : classOf(value, thresholds);
}

function describe(d, label) {
  return d && d.open_places > 0
    ? `${label} : tension ${fmt.dec(d.tension)}, ${fmt.plural(free(d), "place libre", "places libres")}, ${fmt.plural(d.stale_declarations, "déclaration périmée", "déclarations périmées")}`
    : `${label} : aucune offre enregistrée`;
}

/** "Rhône (69)", or for a department of several authorities, the whole of it said so. */
function departmentLabel(code, name) {
  const codes = OF_DEPARTMENT.get(code) || [];
  if (codes.length < 2) return `${name} (${code})`;
  const names = codes.map((c) => AUTHORITIES.get(c).name);
  return `${name} (${code}, département entier : ${names.join(" et ")})`;
}

function selectedDepartments() {
  const scope = parseKey(state.selected);
  if (!scope) return new Set();
  if (scope.kind === "department") return new Set([scope.code]);
  if (MARKED.has(scope.code)) return new Set();
  // An authority's shapes: the departments where it is the only one (20R: 2A and 2B).
  const a = AUTHORITIES.get(scope.code);
  return new Set((a?.departments || []).filter((d) => (OF_DEPARTMENT.get(d) || []).length === 1));
}

function renderMap() {
  const svg = franceSvg($("carte"));
  const mode = MODES[state.mode];
  const thresholds = thresholdsFor(mode);
  const chosen = selectedDepartments();
  for (const path of svg.querySelectorAll("path[data-code]")) {
    const code = path.dataset.code;
    const known = state.byCode.get(code);
    const k = classFor(known, mode, thresholds);
    path.style.fill = k === null ? "" : mode.colors[k];
    path.classList.toggle("sans-donnees", k === null);
    path.classList.toggle("choisi", chosen.has(code));
    path.classList.toggle("maj", (state.changed.get(code) || 0) > Date.now());
    path.dataset.classe = k === null ? "" : String(k);
    const label = departmentLabel(code, path.dataset.name);
    path.setAttribute("aria-label", describe(known, label));
    const title = path.querySelector("title") || path.appendChild(svgEl("title"));
    title.textContent = known && known.open_places > 0 ? `${label} — ${mode.show(known)}` : `${label} — aucune offre enregistrée`;
  }
  for (const marker of svg.querySelectorAll(".marqueur-autorite")) {
    const code = marker.dataset.authority;
    const row = state.byAuthority.get(code);
    const k = classFor(row, mode, thresholds);
    const name = `${AUTHORITIES.get(code).name} (${code})`;
    marker.querySelector(".pastille-autorite").style.fill = k === null ? "#d5d7db" : mode.colors[k];
    marker.classList.toggle("choisi", state.selected === `authority:${code}`);
    marker.classList.toggle("maj", (state.changedAuthorities.get(code) || 0) > Date.now());
    marker.setAttribute("aria-label", describe(row, name));
    marker.querySelector("title").textContent = row && row.open_places > 0 ? `${name} — ${mode.show(row)}` : `${name} — aucune offre enregistrée`;
  }
  for (const text of svg.querySelectorAll(".etiquette-vignette")) {
    const path = svg.querySelector(`#dep-${CSS.escape(text.textContent)}`);
    text.classList.toggle("clair", Number(path?.dataset.classe || 0) >= DARK_FROM);
  }
  svg.setAttribute("aria-label", `Carte des départements colorés selon : ${mode.title}. Le tableau ci-dessous donne les mêmes chiffres par autorité compétente.`);
  $("legende-titre").textContent = mode.title;
  const items = mode.colors.map((color, k) => {
    const lo = k === 0 ? null : thresholds[k - 1];
    const hi = k === thresholds.length ? null : thresholds[k];
    return el("li", {}, el("span", { class: "symbole aplat", dataset: { couleur: color } }), ` ${mode.label(lo, hi)}`);
  });
  items.push(el("li", {}, el("span", { class: "symbole aplat sans-donnees" }), " aucune offre enregistrée"));
  for (const m of PAGE.markers) {
    items.push(el("li", {}, el("span", { class: "symbole rond marqueur" }), ` ${m.name} (cercle « ${m.label} »)`));
  }
  $("legende").replaceChildren(...items);
  for (const swatch of $("legende").querySelectorAll("[data-couleur]")) swatch.style.background = swatch.dataset.couleur;
}

function figures(d) {
  return el(
    "ul",
    { class: "detail" },
    el("li", {}, `Tension : ${fmt.dec(d.tension)}`),
    el("li", {}, `Places libres : ${fmt.n(d.available)} en établissement, ${fmt.n(d.carer_places_available)} chez les assistants familiaux`),
    el("li", {}, `Prévision établissements : 24 h ${fmt.n(d.available_h24)} · 48 h ${fmt.n(d.available_h48)} · 7 j ${fmt.n(d.available_d7)}`),
    el("li", {}, `Déclarations périmées : ${fmt.n(d.stale_declarations)} sur ${fmt.n(d.declarations)}`),
  );
}

/** Links to the dashboards the session may open: its own authority's only (a national analyst
 * or another authority would meet a refusal there), or nothing. */
function dashboardLinks(codes) {
  const current = session();
  codes = codes.filter((c) => AUTHORITY_ROLES.includes(current?.role) && current.authority === c);
  if (!codes.length) return null;
  const links = codes.map((c) => el("a", { href: `/ui/autorites/${encodeURIComponent(c)}` }, `${AUTHORITIES.get(c).name} (${c})`));
  const parts = links.flatMap((link, i) => (i ? [" · ", link] : [link]));
  return el("p", {}, codes.length > 1 ? "Tableaux de bord : " : "Tableau de bord : ", ...parts);
}

function showDetail(key) {
  const scope = parseKey(key);
  const box = $("detail-departement");
  if (!scope) return;
  if (scope.kind === "authority") {
    const a = state.byAuthority.get(scope.code);
    if (!a) {
      box.textContent = "Pas de données pour cette autorité.";
      return;
    }
    const where = a.departments.join(", ");
    box.replaceChildren(el("strong", {}, `${a.name} (${a.authority})`), where !== a.authority ? ` — département ${where}` : "", figures(a), dashboardLinks([a.authority]));
    return;
  }
  const d = state.byCode.get(scope.code);
  if (!d) {
    box.textContent = "Pas de données pour ce département.";
    return;
  }
  const codes = OF_DEPARTMENT.get(d.department) || [];
  box.replaceChildren(
    el("strong", {}, departmentLabel(d.department, d.name)),
    figures(d),
    codes.length > 1 ? el("p", { class: "aide" }, "Chiffres du département entier ; le tableau les donne par autorité.") : null,
    dashboardLinks(codes),
  );
}

// --- table ---------------------------------------------------------------------------------

function authorityCell(a) {
  const where = a.departments.join(", ");
  return `${a.authority} — ${a.name}${where && where !== a.authority ? ` (${where})` : ""}`;
}

const COLUMNS = [
  ["authority", authorityCell],
  ["available", (d) => fmt.n(d.available)],
  ["carer_places_available", (d) => fmt.n(d.carer_places_available)],
  ["installed", (d) => fmt.n(d.installed)],
  ["tension", (d) => fmt.dec(d.tension)],
  ["stale_declarations", (d) => fmt.n(d.stale_declarations)],
];

function sortValue(d, key) {
  if (key === "authority") return AUTHORITIES.get(d.authority)?.order ?? Infinity; // the referential's order
  return d[key];
}

function renderTable() {
  const { key, dir } = state.sort;
  const order = (a, b) => sortValue(a, "authority") - sortValue(b, "authority");
  const rows = [...state.authorities.items].sort((a, b) => {
    const va = sortValue(a, key);
    const vb = sortValue(b, key);
    if (va === vb) return order(a, b);
    if (va === null || va === undefined) return 1;
    if (vb === null || vb === undefined) return -1;
    return (va < vb ? -1 : 1) * dir;
  });
  const table = $("table-autorites");
  for (const th of table.tHead.rows[0].cells) {
    th.setAttribute("aria-sort", th.dataset.cle === key ? (dir > 0 ? "ascending" : "descending") : "none");
  }
  table.tBodies[0].replaceChildren(
    ...rows.map((d) =>
      el(
        "tr",
        {
          id: `a-${d.authority}`,
          class: [(state.changedAuthorities.get(d.authority) || 0) > Date.now() ? "maj" : null, state.selected === `authority:${d.authority}` ? "choisie" : null].filter(Boolean).join(" ") || null,
        },
        ...COLUMNS.map(([k, show], i) =>
          i === 0
            ? el("th", { scope: "row" }, el("button", { type: "button", class: "lien", onclick: () => select(`authority:${d.authority}`) }, show(d)))
            : el("td", { class: `nombre${k === "tension" && d.tension >= 1 ? " fort" : ""}` }, show(d)),
        ),
      ),
    ),
  );
  const t = state.authorities.totals;
  table.tFoot.replaceChildren(
    el("tr", {}, ...COLUMNS.map(([, show], i) => (i === 0 ? el("th", { scope: "row" }, "France entière") : el("td", { class: "nombre" }, show(t))))),
  );
}

function renderTotals() {
  const t = state.authorities.totals;
  $("t-libres").textContent = fmt.n(t.available);
  $("t-af").textContent = fmt.n(t.carer_places_available);
  $("t-tension").textContent = fmt.dec(t.tension);
  $("t-perimees").textContent = fmt.n(t.stale_declarations);
  $("t-perimees-detail").textContent = t.declarations
    ? `sur ${fmt.n(t.declarations)} déclarations (${pct(t.stale_declarations / t.declarations)})`
    : "";
}

// --- chart ---------------------------------------------------------------------------------

const SERIES = [
  ["available", "Total", "serie-total"],
  ["unit_places_available", "Établissements", "serie-etab"],
  ["carer_places_available", "Assistants familiaux", "serie-af"],
];

function niceStep(max) {
  const raw = Math.max(1, max / 4); // whole places: never a step below 1
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}

function renderChart() {
  const box = $("graphique");
  const items = state.history ? state.history.items : [];
  $("graphique-portee").textContent = scopeName(state.selected);
  if (!items.length) {
    box.replaceChildren(el("p", { class: "vide" }, "Pas d'historique."));
    return;
  }
  const W = 640;
  const H = 260;
  const m = { l: 56, r: 12, t: 12, b: 28 };
  const max = Math.max(1, ...items.map((p) => p.available));
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const x = (i) => m.l + (items.length === 1 ? (W - m.l - m.r) / 2 : (i * (W - m.l - m.r)) / (items.length - 1));
  const y = (v) => H - m.b - (v / top) * (H - m.t - m.b);
  const svg = svgEl("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "graphique-svg",
    role: "img",
    "aria-label": `Places libres par jour du ${fmt.date(items[0].day)} au ${fmt.date(items.at(-1).day)} : de ${fmt.n(items[0].available)} à ${fmt.n(items.at(-1).available)} au total.`,
  });
  for (let v = 0; v <= top; v += step) {
    svg.append(
      svgEl("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: "grille" }),
      svgEl("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end", class: "axe" }, fmt.n(v)),
    );
  }
  const every = Math.max(1, Math.ceil(items.length / 7));
  items.forEach((p, i) => {
    if (i % every === 0 || i === items.length - 1) {
      const anchor = i === 0 ? "start" : i === items.length - 1 ? "end" : "middle";
      svg.append(svgEl("text", { x: x(i), y: H - 8, "text-anchor": anchor, class: "axe" }, new Date(p.day + "T12:00:00").toLocaleDateString("fr-FR", { day: "2-digit", month: "2-digit" })));
    }
  });
  for (const [key, , cls] of SERIES) {
    const d = items.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)} ${y(p[key]).toFixed(1)}`).join(" ");
    svg.append(svgEl("path", { d, class: `serie ${cls}` }));
    const last = items.at(-1);
    svg.append(svgEl("circle", { cx: x(items.length - 1), cy: y(last[key]), r: 3.5, class: `serie-point ${cls}` }));
  }
  const legend = el(
    "ul",
    { class: "legende legende-graphique" },
    SERIES.map(([key, label, cls]) => el("li", {}, el("span", { class: `symbole trait ${cls}` }), ` ${label} : ${fmt.n(items.at(-1)[key])} aujourd'hui`)),
  );
  box.replaceChildren(svg, legend);
  $("graphique-donnees").replaceChildren(
    el(
      "table",
      { class: "tableau compact" },
      el("caption", { class: "visuellement-cache" }, "Places libres par jour"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Jour"), SERIES.map(([, label]) => el("th", { scope: "col", class: "nombre" }, label)))),
      el("tbody", {}, items.map((p) => el("tr", {}, el("th", { scope: "row" }, fmt.date(p.day + "T12:00:00")), SERIES.map(([key]) => el("td", { class: "nombre" }, fmt.n(p[key])))))),
    ),
  );
}

// --- children, trends, flows (#18) ---------------------------------------------------------

const SITUATIONS = new Map(PAGE.situations || []); // code → label
const REFUSALS = new Map(PAGE.refusal_reasons || []);
/** A count of children as published: null is hidden by statistical secrecy (« < 5 »). */
const secret = (v) => (v === null || v === undefined ? "< 5" : fmt.n(v));
/** A change from the month before: null is hidden (one of its months is), or unknown. */
const change = (v) => (v === null || v === undefined ? "secret" : v > 0 ? `+${fmt.n(v)}` : fmt.n(v));
const days = (v) => (v === null || v === undefined ? "—" : fmt.dec(v));

function rowsOf(body, rows, span, empty) {
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: span, class: "vide" }, empty))]));
}

function renderChildren(page) {
  const t = page.totals;
  $("enfants-fenetre").textContent = String(page.window_days);
  $("enfants-extraction").textContent = `Extraction du ${fmt.day(page.extracted_on)}.`;
  $("e-attente").textContent = secret(t.children_waiting);
  // The summary's tile too: the tables of offer publish no count of requests or children.
  $("t-attente").textContent = secret(t.children_waiting);
  $("t-attente-detail").textContent = `dont ${secret(t.not_executed["30"])} sans place 30 jours ou plus après la décision`;
  $("e-non-executees-30").textContent = secret(t.not_executed["30"]);
  $("e-non-executees-detail").textContent = `à 30 jours ; à 15 jours : ${secret(t.not_executed["15"])}, à 90 jours : ${secret(t.not_executed["90"])}`;
  const delay = t.execution_delay_days;
  $("e-delai").textContent = delay.median === null ? "—" : `${days(delay.median)} j`;
  const admissions = delay.admissions === null ? "< 5 admissions" : fmt.plural(delay.admissions, "admission", "admissions");
  $("e-delai-detail").textContent = `90e centile : ${delay.p90 === null ? "—" : `${days(delay.p90)} j`} ; ${admissions}`;
  rowsOf(
    $("table-situations").tBodies[0],
    [...SITUATIONS].map(([code, label]) => el("tr", {}, el("th", { scope: "row" }, label), el("td", { class: "nombre" }, secret(t.situations[code])))),
    2,
    "",
  );
  rowsOf(
    $("table-refus").tBodies[0],
    [...REFUSALS].map(([code, label]) => el("tr", {}, el("th", { scope: "row" }, label), el("td", { class: "nombre" }, secret(t.refusals_by_reason[code])))),
    2,
    "",
  );
  const categories = Object.entries(t.refusals_by_category).sort(([a], [b]) => (a === "carer") - (b === "carer") || a.localeCompare(b));
  rowsOf(
    $("table-refus-categories").tBodies[0],
    categories.map(([code, n]) =>
      el("tr", {}, el("th", { scope: "row" }, code === "carer" ? "Assistants familiaux" : `${CATEGORIES[code] || code} (${code})`), el("td", { class: "nombre" }, secret(n))),
    ),
    2,
    "Aucun refus sur la période.",
  );
  rowsOf(
    $("table-enfants").tBodies[0],
    page.items.map((i) =>
      el(
        "tr",
        { id: `e-${i.authority}` },
        el("th", { scope: "row" }, `${i.authority} — ${AUTHORITIES.get(i.authority)?.name || ""}`),
        ...[i.children_waiting, i.not_executed["15"], i.not_executed["30"], i.not_executed["90"], i.situations.hopital, i.situations.hotel_derogation].map((v) =>
          el("td", { class: `nombre${v === null ? " secret" : ""}` }, secret(v)),
        ),
        el("td", { class: "nombre" }, days(i.execution_delay_days.median)),
      ),
    ),
    8,
    "Aucune autorité.",
  );
}

function monthLabel(month) {
  const [y, m] = month.split("-").map(Number);
  return new Date(y, m - 1, 15).toLocaleDateString("fr-FR", { month: "short", year: "numeric" });
}

const TREND_SERIES = [
  ["children_waiting", "Enfants en attente", "serie-total"],
  ["not_executed_30", "Mesures non exécutées à 30 jours", "serie-etab"],
];

function renderTrendChart(items) {
  const box = $("graphique-tendances");
  if (!items.length) {
    box.replaceChildren(el("p", { class: "vide" }, "Pas encore de mois révolu."));
    return;
  }
  const W = 640;
  const H = 240;
  const m = { l: 56, r: 12, t: 12, b: 28 };
  const values = items.flatMap((p) => TREND_SERIES.map(([k]) => p[k])).filter((v) => v !== null);
  const max = Math.max(1, ...values);
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const x = (i) => m.l + (items.length === 1 ? (W - m.l - m.r) / 2 : (i * (W - m.l - m.r)) / (items.length - 1));
  const y = (v) => H - m.b - (v / top) * (H - m.t - m.b);
  const first = items[0];
  const last = items.at(-1);
  const svg = svgEl("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "graphique-svg",
    role: "img",
    "aria-label": `Enfants en attente à la fin de chaque mois, de ${monthLabel(first.month)} à ${monthLabel(last.month)} : de ${secret(first.children_waiting)} à ${secret(last.children_waiting)}. Le tableau qui suit donne les valeurs.`,
  });
  for (let v = 0; v <= top; v += step) {
    svg.append(
      svgEl("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: "grille" }),
      svgEl("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end", class: "axe" }, fmt.n(v)),
    );
  }
  const every = Math.max(1, Math.ceil(items.length / 6));
  items.forEach((p, i) => {
    // Counted from the last month (always labelled), so that no two labels touch.
    if ((items.length - 1 - i) % every === 0) {
      const anchor = i === 0 ? "start" : i === items.length - 1 ? "end" : "middle";
      svg.append(svgEl("text", { x: x(i), y: H - 8, "text-anchor": anchor, class: "axe" }, monthLabel(p.month)));
    }
  });
  for (const [key, , cls] of TREND_SERIES) {
    // A hidden month (« < 5 ») breaks the line: nothing is drawn where nothing is published.
    let d = "";
    let open = false;
    items.forEach((p, i) => {
      if (p[key] === null) {
        open = false;
        return;
      }
      d += `${open ? "L" : "M"}${x(i).toFixed(1)} ${y(p[key]).toFixed(1)} `;
      open = true;
      svg.append(svgEl("circle", { cx: x(i), cy: y(p[key]), r: 3, class: `serie-point ${cls}` }));
    });
    svg.append(svgEl("path", { d: d.trim() || "M0 0", class: `serie ${cls}` }));
  }
  box.replaceChildren(
    svg,
    el("ul", { class: "legende legende-graphique" }, TREND_SERIES.map(([key, label, cls]) => el("li", {}, el("span", { class: `symbole trait ${cls}` }), ` ${label} : ${secret(last[key])} fin ${monthLabel(last.month)}`))),
  );
}

function renderTrends(page) {
  const items = page.items.filter((i) => i.authority === "FR");
  renderTrendChart(items);
  rowsOf(
    $("table-tendances").tBodies[0],
    items.map((p) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, monthLabel(p.month)),
        el("td", { class: "nombre" }, secret(p.children_waiting)),
        el("td", { class: "nombre" }, change(p.children_waiting_change)),
        el("td", { class: "nombre" }, secret(p.not_executed_30)),
        el("td", { class: "nombre" }, change(p.not_executed_30_change)),
        el("td", { class: "nombre" }, secret(p.placements_outside)),
        el("td", { class: "nombre" }, days(p.execution_delay_median)),
        el("td", { class: "nombre" }, days(p.execution_delay_p90)),
      ),
    ),
    8,
    "Pas encore de mois révolu.",
  );
}

/** The origin → host matrix: the authorities that placed or hosted a child outside its own
 * territory (a line or column all zeros says nothing), margins and the grand total. */
function renderFlows(page) {
  const nonZero = (v) => v === null || v > 0;
  const origins = page.origins.filter((o) => nonZero(o.outside));
  const hosts = page.hosts.filter((h) => nonZero(h.from_outside));
  const cells = new Map(page.cells.map((c) => [`${c.origin}>${c.host}`, c.children]));
  $("flux-total").textContent = `Au total : ${secret(page.total.outside)} enfants placés hors de leur autorité, ${secret(page.total.inside)} dans la leur. Extraction du ${fmt.day(page.extracted_on)}.`;
  const table = $("table-flux");
  const name = (code) => AUTHORITIES.get(code)?.name || code;
  table.tHead.replaceChildren(
    el(
      "tr",
      {},
      el("th", { scope: "col" }, "Origine / accueil"),
      hosts.map((h) => el("th", { scope: "col", class: "nombre" }, el("abbr", { title: name(h.authority) }, h.authority))),
      el("th", { scope: "col", class: "nombre" }, "Total hors autorité"),
    ),
  );
  if (!origins.length) {
    table.tBodies[0].replaceChildren(el("tr", {}, el("td", { colspan: hosts.length + 2, class: "vide" }, "Aucun enfant placé hors de son autorité sur la période.")));
    table.tFoot?.remove();
    return;
  }
  table.tBodies[0].replaceChildren(
    ...origins.map((o) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, `${o.authority} — ${name(o.authority)}`),
        hosts.map((h) => {
          const key = `${o.authority}>${h.authority}`;
          const v = cells.has(key) ? cells.get(key) : 0;
          return el("td", { class: `nombre${v === 0 ? " zero" : ""}` }, secret(v));
        }),
        el("td", { class: "nombre fort" }, secret(o.outside)),
      ),
    ),
  );
  const foot = table.tFoot || table.createTFoot();
  foot.replaceChildren(
    el(
      "tr",
      {},
      el("th", { scope: "row" }, "Total accueilli d'autres autorités"),
      hosts.map((h) => el("td", { class: "nombre fort" }, secret(h.from_outside))),
      el("td", { class: "nombre fort" }, secret(page.total.outside)),
    ),
  );
}

async function loadSteering() {
  const parts = [
    ["/v1/stats/children", renderChildren, "alerte-enfants", "Indicateurs des enfants indisponibles."],
    ["/v1/stats/trends?months=12", renderTrends, "alerte-tendances", "Tendances indisponibles."],
    ["/v1/stats/flows", renderFlows, "alerte-flux", "Placements hors de l'autorité indisponibles."],
  ];
  await Promise.all(
    parts.map(async ([path, render, box, text]) => {
      try {
        render(await api(path));
        hideAlert($(box));
      } catch (error) {
        showAlert($(box), `${text} ${explain(error)}`);
      }
    }),
  );
}

// --- interactions --------------------------------------------------------------------------

/** Select a territory ("authority:69M", "department:69"), or unselect it when selected. */
async function select(key) {
  // The table is drawn anew: focus goes back to the same row's button, not to the page.
  const row = document.activeElement?.closest?.("tr[id]")?.id;
  state.selected = state.selected === key ? "" : key;
  $("g-territoire").value = state.selected;
  if (state.selected) showDetail(state.selected);
  renderMap();
  renderTable();
  if (row) document.getElementById(row)?.querySelector("button")?.focus();
  await refreshChart();
}

async function refreshChart() {
  try {
    await loadHistory();
    renderChart();
  } catch (error) {
    $("graphique").replaceChildren(el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte" }, `Historique indisponible. ${explain(error)}`));
  }
}

/** A file of the API downloaded with the session's token (a plain link would carry none):
 * the name the server gives it (with its extraction date), else ``fallback``. */
async function exportCsv(path = "/v1/stats/authorities.csv", fallback = "places-autorites.csv") {
  hideAlert(alertBox);
  try {
    const response = await api(path, { raw: true, headers: { Accept: path.endsWith(".json") ? "application/json" : "text/csv" } });
    const blob = await response.blob();
    const stamp = new Date().toISOString().slice(0, 10);
    const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "")?.[1] || fallback.replace(/\.(csv|schema\.json)$/, `-${stamp}.$1`);
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    announce(announcer, `Fichier téléchargé (${name}).`);
  } catch (error) {
    showAlert(alertBox, `Export impossible. ${explain(error)}`);
  }
}

/** A shape or a marker of the map, for the mouse: clicking selects. The map is out of the Tab
 * order (101 departments to cross before "Exporter"); the table below is its equivalent, with
 * a button per authority, for the keyboard and screen readers. */
function interactive(node, key) {
  node.addEventListener("click", () => select(key));
  node.addEventListener("mouseenter", () => showDetail(key));
}

/**
 * The Métropole de Lyon on the Rhône's shape: a labelled circle at Lyon, coloured by its own
 * figures. It is put right after its department's shape, so that Tab reaches it just after
 * the Rhône, as the shapes are reached (and it is drawn above the Rhône).
 */
function addMarkers(svg) {
  const project = metroProjection(svg);
  for (const m of PAGE.markers) {
    const path = svg.querySelector(`#dep-${CSS.escape(m.department)}`);
    if (!path) continue;
    const [x, y] = project(m.lon, m.lat);
    const marker = svgEl(
      "g",
      { id: `marqueur-${m.code}`, class: "marqueur-autorite", "data-authority": m.code, transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})` },
      svgEl("title", {}, `${m.name} (${m.code})`),
      svgEl("circle", { r: 8.5, class: "anneau" }),
      svgEl("circle", { r: 6, class: "pastille-autorite" }),
      // West of the circle, over its own department (drawn before it): a shape drawn after
      // it (Savoie, east of Lyon) would hide a label on the other side.
      svgEl("text", { x: -11, y: 4, "text-anchor": "end", class: "etiquette-marqueur", "aria-hidden": "true" }, m.label),
    );
    path.after(marker);
    interactive(marker, `authority:${m.code}`);
  }
}

function wireMap() {
  const svg = franceSvg($("carte"));
  // Its shapes are buttons: a group of them, not an image (an image's content is not read).
  svg.setAttribute("role", "group");
  for (const path of svg.querySelectorAll("path[data-code]")) interactive(path, keyOfDepartment(path.dataset.code));
  addMarkers(svg);
}

function wireTable() {
  for (const th of $("table-autorites").tHead.rows[0].cells) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.cle;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "authority" ? 1 : -1 };
      renderTable();
    });
  }
}

const refresh = coalesce(async () => {
  try {
    const changed = await loadStats();
    renderAll();
    if (changed.length) {
      announce(announcer, `Mise à jour en direct : ${changed.map((d) => d.name).slice(0, 3).join(", ")}${changed.length > 3 ? "…" : ""}.`);
      setTimeout(() => {
        renderMap();
        renderTable();
      }, 4100);
    }
  } catch (error) {
    showAlert(alertBox, explain(error));
  }
}, 300);

const refreshChartSoon = coalesce(refreshChart, 3000);

function renderAll() {
  renderTotals();
  renderMap();
  renderTable();
}

async function main() {
  const current = await requireSession(["national", "department", "operator"], alertBox);
  if (!current) return;
  for (const input of document.querySelectorAll("#mode-carte input")) {
    input.addEventListener("change", () => {
      state.mode = input.value;
      renderMap();
    });
  }
  $("g-jours").addEventListener("change", refreshChart);
  $("g-territoire").addEventListener("change", (e) => select(e.target.value || state.selected));
  $("export-csv").addEventListener("click", () => exportCsv());
  for (const button of document.querySelectorAll("[data-export]")) {
    button.addEventListener("click", () => exportCsv(button.dataset.export, button.dataset.nom));
  }
  wireMap();
  wireTable();
  let feed = null;
  if (current.role === "national" || current.role === "operator") {
    feed = new LiveFeed("/ws/national", {
      onEvent: (message) => {
        refresh();
        if (/^(capacity|carer)\./.test(message.type)) refreshChartSoon();
      },
      onResync: refresh,
      status: $("etat-direct"),
      reconnectButton: $("reconnecter"),
    });
    // Started after the first snapshot, from the position it is consistent with (below).
  } else {
    const status = $("etat-direct");
    status.dataset.etat = "direct";
    status.querySelector(".texte").textContent = "Actualisation toutes les 30 s (le flux national est réservé au pilotage)";
    setInterval(refresh, 30_000);
  }
  try {
    await loadStats();
    renderAll();
    feed?.startAfter(state.position);
    await Promise.all([refreshChart(), loadSteering()]);
  } catch (error) {
    showAlert(alertBox, `Chargement impossible. ${explain(error)}`);
  } finally {
    if (feed && !feed.socket) feed.start(); // the first read failed: live from now, as before
    feed?.release();
  }
  window.placesFeed = feed;
}

main();
