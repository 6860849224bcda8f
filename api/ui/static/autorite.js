// Dashboard of a competent authority (69M, 69D, 20R, 6AE, 38…): its key figures (the
// national statistics' definitions, /v1/stats/authorities), its offer (units and carers, now
// and forecast, with filters and a map zoomed on its departments), its waiting list and
// holds, a search across France, all kept live by the authority's feed
// (WS /ws/authorities/{code}). Every figure comes from the /v1 API with the session's token.
// A placement service (or the authority's administrator) sees its own authority's dashboard.

import {
  ApiError,
  CATEGORIES,
  MESURES,
  MODES,
  NIVEAUX_HANDICAP,
  PROFILS,
  SERVICES_HANDICAP,
  URGENCES,
  allPages,
  announce,
  api,
  coalesce,
  el,
  explain,
  fillSelect,
  fmt,
  hideAlert,
  may,
  restoreDraft,
  newKey,
  ownDashboard,
  pageData,
  profilsGradues,
  requireSession,
  showAlert,
  svgEl,
} from "./common.js";
import { setUpAgrements } from "./agrements.js";
import { LiveFeed } from "./live.js";
import { layer, loadFranceSvg, localFrame, metroProjection, zoomOn } from "./map.js";

const PAGE = pageData();
const CODE = PAGE.code; // the authority's
const SCOPE = `authority=${encodeURIComponent(CODE)}`;
const STALE_DAYS = PAGE.stale_after_days;
const REFUSALS = Object.fromEntries(PAGE.refusal_reasons || []); // code → label
const SITUATIONS = Object.fromEntries(PAGE.situations || []);
const NOT_EXECUTED_DAYS = [15, 30, 90]; // the indicators' thresholds (api/stats/children.py)
const UNEXECUTED_DAYS = PAGE.unexecuted_after_days;
const $ = (id) => document.getElementById(id);
const alertBox = $("alerte-page");
const announcer = $("annonces");

const CRITERES = {
  distance: "Distance",
  family_type: "Accueil familial",
  freshness: "Fraîcheur de la déclaration",
  care_mode: "Mode d'accueil",
  disability: "Handicap",
  disability_service: "Service du handicap",
  siblings: "Fratrie",
  department: "Département",
};
/** The relaxation of an offer silent on a child's disability profile (matching/disability.py). */
const DISABILITY_UNSTATED = "disability_unstated";
const ECHEANCES = { current: "maintenant", h1: "sous 1 h", h24: "sous 24 h", h48: "sous 48 h", d7: "sous 7 jours" };

const state = {
  structures: [],
  units: new Map(), // unit id → {unit, structure}
  carers: new Map(), // carer id → carer
  communes: new Map(), // insee → {name, lat, lon, department, authority}
  figures: null, // this authority's row of /v1/stats/authorities
  waiting: [],
  held: [],
  placed: [], // requests placed through Places, whose exit may be recorded
  children: null, // this authority's row of /v1/stats/children/{code} (exact)
  drill: null, // the indicator whose requests are listed: {kind: "days" | "situation", value}
  selected: null, // the waiting request the search is for
  results: null,
  flashed: new Map(), // row id → until (ms)
  map: null,
  lastAction: 0, // when this tab itself changed a request (its own message is announced)
};

// --- loading -------------------------------------------------------------------------------

async function loadOffer() {
  const [structures, carers, communes] = await Promise.all([
    allPages(`/v1/structures?${SCOPE}`, 500),
    allPages(`/v1/foster-carers?${SCOPE}`, 5000),
    api(`/ui/geo/communes?${SCOPE}`),
  ]);
  state.structures = structures;
  state.units.clear();
  for (const structure of structures) {
    for (const unit of structure.units) state.units.set(unit.id, { unit, structure });
  }
  state.carers = new Map(carers.map((c) => [c.id, c]));
  for (const c of communes.items) state.communes.set(c.insee, c);
}

/** The children's data (requests, holds, search, the live feed) is the placement service's
 * (permission ``placement``); an agrément service (PMI) or an inspector reads the offer and
 * the agréments only. Set in main() from GET /v1/me. */
let placement = true;
/** And the indicators of children need ``stats.read`` too (GET /v1/stats/children/{code}). */
let steering = true;

// The first screen's reads (key figures, waiting list, holds) are pages.first_screen's paths,
// character for character: amorce.js started them before this module was fetched.

async function loadRequests() {
  if (!placement) return;
  const [waiting, held] = await Promise.all([
    api(`/v1/requests?${SCOPE}&status=waiting&limit=500`),
    api(`/v1/requests?${SCOPE}&status=held&limit=500`),
  ]);
  state.waiting = waiting.items;
  state.held = held.items;
}

/** The children placed through Places (after the first screen: not one of its reads). */
async function loadPlaced() {
  if (!placement) return;
  state.placed = (await api(`/v1/requests?${SCOPE}&status=placed&limit=500`)).items;
}

/** The authority's own indicators of children, exact (GET /v1/stats/children/{code}). */
async function loadIndicators() {
  if (!placement || !steering) return;
  const page = await api(`/v1/stats/children/${encodeURIComponent(CODE)}?window_days=90`);
  state.children = { ...page.items[0], extracted_on: page.extracted_on };
}

/** The key figures as national steering counts them (the same definitions, the same query). */
async function loadFigures() {
  const stats = await api(`/v1/stats/authorities?${SCOPE}`);
  state.figures = stats.items.find((row) => row.authority === CODE) || null;
}

async function loadAll() {
  await Promise.all([loadOffer(), loadRequests(), loadFigures(), loadPlaced(), loadIndicators().catch(() => null)]);
  renderAll();
}

// --- filters -------------------------------------------------------------------------------

function filters() {
  const age = $("f-age").value === "" ? null : Number($("f-age").value);
  return {
    age: Number.isFinite(age) ? age : null,
    mode: $("f-mode").value || null,
    profil: $("f-profil").value || null,
    onlyFree: $("f-libres").checked,
  };
}

function filtersActive(f) {
  return f.age !== null || f.mode || f.profil || f.onlyFree;
}

function fits(offer, f) {
  if (f.age !== null && (f.age < offer.age_min || f.age > offer.age_max)) return false;
  if (f.mode && !offer.care_modes.includes(f.mode)) return false;
  if (f.profil && !offer.disability_profiles.includes(f.profil)) return false;
  return true;
}

function freeAt(unit, temporality) {
  if (temporality === "current") return unit.capacity ? unit.capacity.available : 0;
  const forecast = (unit.forecasts || []).find((s) => s.temporality === temporality);
  if (forecast) return forecast.available;
  return unit.capacity ? unit.capacity.available : 0;
}

function visibleUnits(f) {
  const rows = [];
  for (const { unit, structure } of state.units.values()) {
    if (!fits(unit, f)) continue;
    if (f.onlyFree && freeAt(unit, "current") <= 0) continue;
    rows.push({ unit, structure });
  }
  rows.sort(
    (a, b) =>
      freeAt(b.unit, "current") - freeAt(a.unit, "current") ||
      a.structure.name.localeCompare(b.structure.name, "fr") ||
      a.unit.name.localeCompare(b.unit.name, "fr"),
  );
  return rows;
}

function visibleCarers(f) {
  return [...state.carers.values()].filter(
    (c) => fits(c, f) && (!f.onlyFree || (c.status === "active" && c.available_places > 0)),
  );
}

const isStale = (declaredAt) => fmt.ageDays(declaredAt) > STALE_DAYS;

// --- rendering -----------------------------------------------------------------------------

function renderAll() {
  renderOffer();
  renderWaiting();
  renderHolds();
  renderPlaced();
  renderIndicators();
  renderDrill();
  renderFigures();
}

function renderOffer() {
  const f = filters();
  const units = visibleUnits(f);
  const carers = visibleCarers(f);
  renderUnits(units);
  renderCarers(carers);
  renderMap(units, carers);
  renderFigures(units, carers, f);
}

function freshness(declaredAt) {
  if (!declaredAt) return el("span", { class: "fr-badge fr-badge--sm fr-badge--error badge alerte" }, "jamais déclaré");
  const text = el("time", { datetime: declaredAt, title: fmt.dateTime(declaredAt) }, fmt.age(declaredAt));
  return isStale(declaredAt)
    ? el("span", {}, text, " ", el("span", { class: "fr-badge fr-badge--sm fr-badge--error badge alerte" }, "périmée"))
    : text;
}

function flashClass(id) {
  const until = state.flashed.get(id);
  if (until && until > Date.now()) return "maj";
  state.flashed.delete(id);
  return null;
}

function renderUnits(rows) {
  const body = $("table-unites").tBodies[0];
  if (!state.units.size) {
    body.replaceChildren(emptyRow(7, "Aucun établissement enregistré dans ce territoire."));
    return;
  }
  if (!rows.length) {
    body.replaceChildren(emptyRow(7, "Aucune unité ne correspond aux filtres."));
    return;
  }
  body.replaceChildren(
    ...rows.map(({ unit, structure }) => {
      const free = freeAt(unit, "current");
      const modes = unit.care_modes.map((m) => MODES[m] || m).join(", ");
      const profils = unit.disability_profiles.length ? ` · ${profilsGradues(unit)}` : "";
      return el(
        "tr",
        { id: `u-${unit.id}`, class: flashClass(`u-${unit.id}`), dataset: { unit: unit.id } },
        el(
          "th",
          { scope: "row" },
          el("span", { class: "nom" }, structure.name),
          el("span", { class: "aide" }, ` ${CATEGORIES[structure.category] || structure.category}`),
          el("br"),
          unit.name,
        ),
        el("td", {}, `${unit.age_min}–${unit.age_max} ans · ${modes}${profils}`),
        el("td", { class: `nombre ${free > 0 ? "libre" : "complet"}`, dataset: { champ: "libres" } }, fmt.n(free)),
        el("td", { class: "nombre" }, fmt.n(freeAt(unit, "h24"))),
        el("td", { class: "nombre" }, fmt.n(freeAt(unit, "h48"))),
        el("td", { class: "nombre" }, fmt.n(freeAt(unit, "d7"))),
        el("td", {}, freshness(unit.capacity && unit.capacity.declared_at)),
      );
    }),
  );
}

function communeName(insee) {
  const c = state.communes.get(insee);
  return c ? c.name : insee;
}

function carersByCommune(carers) {
  const groups = new Map();
  for (const c of carers) {
    const g = groups.get(c.commune) || { commune: c.commune, active: 0, free: 0, oldest: null, total: 0 };
    g.total += 1;
    if (c.status === "active") {
      g.active += 1;
      g.free += c.available_places;
      if (!g.oldest || c.declared_at < g.oldest) g.oldest = c.declared_at;
    }
    groups.set(c.commune, g);
  }
  return [...groups.values()].sort((a, b) => b.free - a.free || communeName(a.commune).localeCompare(communeName(b.commune), "fr"));
}

function renderCarers(carers) {
  const body = $("table-af").tBodies[0];
  if (!state.carers.size) {
    body.replaceChildren(emptyRow(4, "Aucun assistant familial enregistré dans ce territoire."));
    return;
  }
  const groups = carersByCommune(carers);
  if (!groups.length) {
    body.replaceChildren(emptyRow(4, "Aucun assistant familial ne correspond aux filtres."));
    return;
  }
  body.replaceChildren(
    ...groups.map((g) =>
      el(
        "tr",
        { id: `c-${g.commune}`, class: flashClass(`c-${g.commune}`) },
        el("th", { scope: "row" }, communeName(g.commune)),
        el("td", { class: "nombre" }, `${fmt.n(g.active)} / ${fmt.n(g.total)}`),
        el("td", { class: `nombre ${g.free > 0 ? "libre" : "complet"}` }, fmt.n(g.free)),
        el("td", {}, g.oldest ? freshness(g.oldest) : "—"),
      ),
    ),
  );
}

function emptyRow(span, text) {
  return el("tr", {}, el("td", { colspan: span, class: "vide" }, text));
}

/**
 * Key figures: the authority's row of /v1/stats/authorities (what national steering reads),
 * unless filters of the offer are applied: then the offer's figures are those of the units
 * and carers shown, computed here with the same definitions.
 */
function renderFigures(units, carers, f) {
  if (!units) {
    f = filters();
    units = visibleUnits(f);
    carers = visibleCarers(f);
  }
  const filtered = filtersActive(f);
  const stats = state.figures;
  if (stats && !filtered) offerFiguresOf(stats);
  else offerFiguresFrom(units, carers);
  if (stats) demandFiguresOf(stats);
  else demandFiguresFrom(state.waiting, state.held);
  $("chiffres-filtres").hidden = !filtered;
  $("chiffres-source").textContent = filtered
    ? "Offre : unités et assistants familiaux correspondant aux filtres. Demandes : tout le territoire."
    : "Mêmes chiffres et mêmes définitions que le pilotage national.";
}

function offerFiguresOf(s) {
  $("k-libres").textContent = fmt.n(s.available);
  $("k-prevision").textContent = `24 h : ${fmt.n(s.available_h24)} · 48 h : ${fmt.n(s.available_h48)} · 7 j : ${fmt.n(s.available_d7)}`;
  $("k-af").textContent = fmt.n(s.carer_places_available);
  $("k-af-detail").textContent = `${fmt.plural(s.carers_active, "AF en activité", "AF en activité")} sur ${fmt.n(s.carers)}`;
  $("k-perimees").textContent = fmt.n(s.stale_declarations);
  $("k-perimees-detail").textContent =
    `sur ${fmt.n(s.declarations)} déclarations` +
    (s.undeclared_units ? ` · ${fmt.plural(s.undeclared_units, "unité jamais déclarée", "unités jamais déclarées")}` : "");
}

function offerFiguresFrom(units, carers) {
  const sum = (t) => units.reduce((acc, { unit }) => acc + freeAt(unit, t), 0);
  $("k-libres").textContent = fmt.n(sum("current"));
  $("k-prevision").textContent = `24 h : ${fmt.n(sum("h24"))} · 48 h : ${fmt.n(sum("h48"))} · 7 j : ${fmt.n(sum("d7"))}`;
  const active = carers.filter((c) => c.status === "active");
  $("k-af").textContent = fmt.n(active.reduce((acc, c) => acc + c.available_places, 0));
  $("k-af-detail").textContent = `${fmt.plural(active.filter((c) => c.available_places > 0).length, "AF disponible", "AF disponibles")} sur ${fmt.n(carers.length)}`;
  const declared = units.filter(({ unit }) => unit.capacity);
  const staleUnits = declared.filter(({ unit }) => isStale(unit.capacity.declared_at)).length;
  const staleCarers = active.filter((c) => isStale(c.declared_at)).length;
  $("k-perimees").textContent = fmt.n(staleUnits + staleCarers);
  const never = units.length - declared.length;
  $("k-perimees-detail").textContent =
    `sur ${fmt.n(declared.length + active.length)} déclarations` + (never ? ` · ${fmt.plural(never, "unité jamais déclarée", "unités jamais déclarées")}` : "");
}

function waitingDetail(children, oldest) {
  return `${fmt.plural(children, "enfant", "enfants")} · la plus ancienne : ${fmt.plural(oldest, "jour", "jours")}`;
}

function demandFiguresOf(s) {
  $("k-attente").textContent = fmt.n(s.requests_waiting);
  $("k-attente-detail").textContent = s.requests_waiting ? waitingDetail(s.children_waiting, s.oldest_waiting_days ?? 0) : "personne n'attend";
  $("k-non-executees").textContent = fmt.n(s.measures_not_executed);
}

function demandFiguresFrom(waiting, held) {
  const children = waiting.reduce((acc, r) => acc + r.children.length, 0);
  $("k-attente").textContent = fmt.n(waiting.length);
  const oldest = waiting.reduce((acc, r) => Math.max(acc, r.days_since_decision), 0);
  $("k-attente-detail").textContent = waiting.length ? waitingDetail(children, oldest) : "personne n'attend";
  const unexecuted = [...waiting, ...held].filter((r) => r.days_since_decision >= UNEXECUTED_DAYS);
  $("k-non-executees").textContent = fmt.n(unexecuted.length);
}

// --- map -----------------------------------------------------------------------------------

async function setUpMap() {
  const container = $("carte");
  if (PAGE.overseas) {
    const communes = [...state.communes.values()];
    state.map = communes.length ? localFrame(container, communes, `Carte de ${PAGE.name}`) : null;
    return;
  }
  const svg = await loadFranceSvg(container);
  const own = PAGE.departments.map((d) => d.code);
  const zoom = zoomOn(svg, own);
  for (const code of own) svg.querySelector(`#dep-${CSS.escape(code)}`)?.classList.add("courant");
  for (const code of PAGE.neighbours) svg.querySelector(`#dep-${CSS.escape(code)}`)?.classList.add("voisin");
  const shared = (PAGE.partners || []).length > 0;
  svg.setAttribute(
    "aria-label",
    shared
      ? `Carte de ${PAGE.name} : ses communes dans le département ${own.join(", ")}, et les départements voisins`
      : `Carte de ${PAGE.name} et des départements voisins`,
  );
  state.map = { svg, project: metroProjection(svg), side: zoom ? zoom.side : 613 };
  // Names of the neighbours (and of the authority's departments when it has several), for
  // orientation, under the points.
  const names = layer(svg, "couche-noms");
  const size = (state.map.side / 32).toFixed(2);
  const labelled = [...(own.length > 1 ? own : []), ...PAGE.neighbours];
  for (const code of labelled) {
    const path = svg.querySelector(`#dep-${CSS.escape(code)}`);
    if (!path || !path.dataset.cx) continue;
    names.append(
      svgEl(
        "text",
        {
          x: path.dataset.cx,
          y: path.dataset.cy,
          "text-anchor": "middle",
          "font-size": size,
          class: own.includes(code) ? "nom-departement courant" : "nom-departement",
          "aria-hidden": "true",
        },
        `${path.dataset.name} (${code})`,
      ),
    );
  }
  // An authority sharing its department (69M, 69D): its communes, faint, show where it is on
  // the department's shape (there is no shape of its own to draw).
  if (shared) {
    const base = layer(svg, "couche-communes");
    base.setAttribute("class", "couche communes-territoire");
    const { project } = state.map;
    const r = (state.map.side / 160).toFixed(2);
    for (const c of state.communes.values()) {
      if (c.authority !== CODE) continue;
      const [x, y] = project(c.lon, c.lat);
      base.append(svgEl("circle", { cx: x.toFixed(2), cy: y.toFixed(2), r }));
    }
  }
}

function renderMap(units, carers) {
  if (!state.map) return;
  const { svg, project, side } = state.map;
  const u = side / 110;
  const points = layer(svg, "couche-offre");
  const byStructure = new Map();
  for (const { unit, structure } of units) {
    const entry = byStructure.get(structure.id) || { structure, free: 0 };
    entry.free += freeAt(unit, "current");
    byStructure.set(structure.id, entry);
  }
  for (const group of carersByCommune(carers)) {
    const c = state.communes.get(group.commune);
    if (!c) continue;
    const [x, y] = project(c.lon, c.lat);
    const s = u * (1.1 + 0.7 * Math.sqrt(group.free));
    points.append(
      svgEl(
        "rect",
        {
          x: (x - s / 2).toFixed(2),
          y: (y - s / 2).toFixed(2),
          width: s.toFixed(2),
          height: s.toFixed(2),
          class: group.free > 0 ? "point-af libre" : "point-af",
        },
        svgEl("title", {}, `Assistants familiaux à ${communeName(group.commune)} : ${group.free} place(s) libre(s)`),
      ),
    );
  }
  for (const { structure, free } of byStructure.values()) {
    const [x, y] = project(structure.location.lon, structure.location.lat);
    points.append(
      svgEl(
        "circle",
        {
          cx: x.toFixed(2),
          cy: y.toFixed(2),
          r: (u * (0.9 + 0.6 * Math.sqrt(free))).toFixed(2),
          class: free > 0 ? "point-etab libre" : "point-etab complet",
        },
        svgEl("title", {}, `${structure.name} : ${free} place(s) libre(s)`),
      ),
    );
  }
  renderResultsOnMap();
  const freeStructures = [...byStructure.values()].filter((s) => s.free > 0).length;
  $("carte-resume").textContent = `Sur la carte : ${fmt.plural(byStructure.size, "établissement", "établissements")} (dont ${fmt.n(freeStructures)} avec des places libres) ; assistants familiaux dans ${fmt.plural(carersByCommune(carers).length, "commune", "communes")}.`;
}

function renderResultsOnMap() {
  if (!state.map) return;
  const { svg, project, side } = state.map;
  const g = layer(svg, "couche-resultats");
  if (!state.results) return;
  const u = side / 110;
  state.results.proposals.forEach((p, i) => {
    const c = state.communes.get(p.commune);
    if (!c) return;
    const [x, y] = project(c.lon, c.lat);
    const s = u * 2.2;
    g.append(
      svgEl(
        "g",
        { class: "point-resultat", transform: `translate(${x.toFixed(2)} ${y.toFixed(2)})` },
        svgEl("rect", { x: -s / 2, y: -s / 2, width: s, height: s, transform: "rotate(45)" }),
        svgEl("text", { y: (s * 0.22).toFixed(2), "font-size": (s * 0.7).toFixed(2), "text-anchor": "middle" }, String(i + 1)),
        svgEl("title", {}, `Proposition ${i + 1} : ${proposalName(p)}`),
      ),
    );
  });
}

// --- waiting list and holds ----------------------------------------------------------------

function describeChildren(children) {
  const parts = children.map((c) => {
    const profils = c.disability_profiles.length ? `, ${c.disability_profiles.map((p) => PROFILS[p] || p).join(", ")}` : "";
    return `${c.age} ans (${c.sex === "F" ? "F" : "G"}${profils})`;
  });
  return `${children.length} : ${parts.join(" ; ")}`;
}

const WAITING_PAGE = 10;

/** The waiting list as read: the longest wait since the decision first, filtered by the
 * words typed (reference, care mode, urgency, measure), ten rows a page. */
function waitingRows() {
  const words = ($("filtre-attente")?.value || "").toLowerCase().split(/\s+/).filter(Boolean);
  const text = (r) =>
    [r.reference, MODES[r.care_mode], URGENCES[r.urgency], MESURES[r.measure.kind], describeChildren(r.children)]
      .join(" ")
      .toLowerCase();
  return state.waiting
    .filter((r) => words.every((w) => text(r).includes(w)))
    .sort((a, b) => b.days_since_decision - a.days_since_decision || a.reference.localeCompare(b.reference));
}

function renderPagination(nav, pages, current, go) {
  nav.hidden = pages <= 1;
  if (pages <= 1) {
    nav.replaceChildren();
    return;
  }
  const link = (page, label, attrs = {}) =>
    el(
      "li",
      {},
      el(
        "a",
        {
          class: `fr-pagination__link ${attrs.class || ""}`.trim(),
          href: page === null ? null : `#p${page}`,
          role: "link",
          "aria-current": page === current && !attrs.class ? "page" : null,
          "aria-disabled": page === null ? "true" : null,
          title: attrs.title || null,
          onclick: page === null ? null : (event) => {
            event.preventDefault();
            go(page);
          },
        },
        label,
      ),
    );
  const numbers = [];
  for (let p = 1; p <= pages; p += 1) numbers.push(link(p, String(p), { title: `Page ${p}` }));
  nav.replaceChildren(
    el(
      "ul",
      { class: "fr-pagination__list" },
      link(current > 1 ? current - 1 : null, "Page précédente", { class: "fr-pagination__link--prev fr-pagination__link--lg-label" }),
      ...numbers,
      link(current < pages ? current + 1 : null, "Page suivante", { class: "fr-pagination__link--next fr-pagination__link--lg-label" }),
    ),
  );
}

function renderWaiting() {
  const body = $("table-attente").tBodies[0];
  const rows = waitingRows();
  const pages = Math.max(1, Math.ceil(rows.length / WAITING_PAGE));
  state.waitingPage = Math.min(Math.max(1, state.waitingPage || 1), pages);
  const shown = rows.slice((state.waitingPage - 1) * WAITING_PAGE, state.waitingPage * WAITING_PAGE);
  $("compte-attente").textContent = state.waiting.length
    ? `${fmt.plural(rows.length, "demande", "demandes")}${rows.length < state.waiting.length ? ` sur ${fmt.n(state.waiting.length)}` : ""}, la plus longue attente d'abord${pages > 1 ? ` — page ${state.waitingPage} sur ${pages}` : ""}.`
    : "";
  renderPagination($("pages-attente"), pages, state.waitingPage, (page) => {
    state.waitingPage = page;
    renderWaiting();
    // Focus stays on the pagination, on the page now shown.
    $("pages-attente").querySelector("[aria-current=page]")?.focus();
  });
  if (!shown.length) {
    body.replaceChildren(emptyRow(7, state.waiting.length ? "Aucune demande ne correspond au filtre." : "Aucune demande en attente."));
    return;
  }
  body.replaceChildren(
    ...shown.map((r) => {
      const late = r.days_since_decision >= UNEXECUTED_DAYS;
      return el(
        "tr",
        { class: [late ? "non-executee" : null, state.selected?.id === r.id ? "choisie" : null].filter(Boolean).join(" ") || null },
        el("th", { scope: "row" }, r.reference),
        el(
          "td",
          {},
          el(
            "button",
            { type: "button", class: "fr-btn fr-btn--sm bouton petit", "aria-label": `Chercher une place pour ${r.reference}`, onclick: () => chooseRequest(r) },
            "Chercher",
          ),
          situationButton(r),
          el(
            "button",
            {
              type: "button",
              class: "fr-btn fr-btn--tertiary fr-btn--sm bouton petit secondaire annuler",
              dataset: { request: r.id },
              onclick: (event) => openCancel(r, event.currentTarget),
            },
            "Annuler…",
            el("span", { class: "visuellement-cache" }, ` — la demande ${r.reference}`),
          ),
        ),
        el(
          "td",
          { class: "nombre" },
          fmt.n(r.days_since_decision),
          late ? el("span", { class: "fr-badge fr-badge--sm fr-badge--error badge alerte" }, "non exécutée") : null,
        ),
        el("td", {}, describeChildren(r.children)),
        el("td", {}, MODES[r.care_mode] || r.care_mode),
        el("td", {}, URGENCES[r.urgency] || r.urgency),
        el("td", {}, `${MESURES[r.measure.kind]}, ${fmt.date(r.measure.decided_on)}`),
      );
    }),
  );
}

// --- the child's waiting situation (#18: where they live while the measure waits) ----------

/** « Situation : au domicile familial » — opens the form that records another one. */
function situationButton(request) {
  const code = request.situation?.code || "inconnu";
  const label = SITUATIONS[code] || code;
  return el(
    "button",
    {
      type: "button",
      class: "fr-btn fr-btn--tertiary fr-btn--sm bouton petit secondaire situation",
      dataset: { request: request.id },
      onclick: (event) => openSituation(request, event.currentTarget),
    },
    `Situation : ${label}`,
    el("span", { class: "visuellement-cache" }, ` — ${request.reference}, modifier`),
  );
}

function today() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** PUT /v1/requests/{id}/situation with If-Match (the version the list showed: a colleague's
 * change is never overwritten blindly) and an Idempotency-Key (a retry records it once). */
function openSituation(request, opener) {
  const box = $("action-attente");
  const current = request.situation?.code || "inconnu";
  const code = el(
    "select",
    { id: "situation-code", class: "fr-select" },
    (PAGE.situations || []).map(([value, label]) => el("option", { value, selected: value === current }, label)),
  );
  const since = el("input", { id: "situation-depuis", class: "fr-input", type: "date", value: today(), max: today(), required: true });
  const result = el("div", { role: "status", "aria-live": "polite" });
  const heading = el("h3", { id: "titre-situation", tabindex: "-1" }, `Situation de l'enfant — ${request.reference}`);
  const key = { value: null };
  const back = () => {
    const again = document.querySelector(`#table-attente button.situation[data-request="${CSS.escape(request.id)}"]`);
    (again || (opener.isConnected ? opener : $("titre-attente"))).focus();
  };
  const close = () => {
    box.replaceChildren();
    back();
  };
  const form = el(
    "form",
    { class: "formulaire", novalidate: true, "aria-labelledby": "titre-situation" },
    heading,
    el("p", { class: "aide" }, "Où vit l'enfant en attendant l'exécution de la mesure : compté dans les indicateurs de l'autorité."),
    el(
      "div",
      { class: "ligne-champs" },
      el("div", { class: "fr-select-group champ" }, el("label", { class: "fr-label", for: code.id }, "Situation"), code),
      el("div", { class: "fr-input-group champ" }, el("label", { class: "fr-label", for: since.id }, "Depuis le"), since),
    ),
    result,
    el(
      "div",
      { class: "boutons" },
      el("button", { type: "submit", class: "fr-btn bouton principal" }, "Enregistrer la situation"),
      el("button", { type: "button", class: "fr-btn fr-btn--secondary bouton secondaire", onclick: close }, "Annuler"),
    ),
  );
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!key.value) key.value = newKey();
    state.lastAction = Date.now();
    try {
      await api(`/v1/requests/${request.id}/situation`, {
        method: "PUT",
        body: { code: code.value, since: since.value || undefined },
        headers: { "If-Match": `"${request.version}"`, "Idempotency-Key": key.value },
      });
      key.value = null;
      box.replaceChildren();
      announce(announcer, `Situation de ${request.reference} enregistrée : ${SITUATIONS[code.value] || code.value}.`);
      await loadRequests();
      renderWaiting();
      back();
    } catch (error) {
      if (!(error instanceof ApiError && error.network)) key.value = null;
      let text = explain(error);
      if (error instanceof ApiError && (error.status === 409 || error.status === 412)) {
        text = "Cette demande a changé entre-temps : rien n'a été enregistré. La liste est rechargée ; vérifiez puis recommencez.";
        reloadRequests();
      }
      result.replaceChildren(el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert" }, text));
    }
  });
  box.replaceChildren(form);
  heading.focus();
}

// --- coded outcomes: cancelling a request, a child's exit (#18) -----------------------------

/**
 * A form asking a coded reason (required: the statistics count codes) and optional short
 * precisions (200 characters at most, the authority's own: never exported nor national),
 * in ``box``; ``send({reason_code, reason?})`` does the call. Escape or the second button
 * closes it, the focus going back to the button that opened it.
 */
function outcomeForm({ box, id, title, options, submit, close: closeLabel, opener, fallback, send }) {
  const code = el(
    "select",
    { id: `${id}-code`, class: "fr-select", required: true, "aria-required": "true" },
    el("option", { value: "" }, "— Choisir un motif —"),
    options.map(([value, label]) => el("option", { value }, label)),
  );
  const text = el("textarea", { id: `${id}-texte`, class: "fr-input", maxlength: 200, rows: 2, "aria-describedby": `${id}-aide` });
  const result = el("div", { role: "status", "aria-live": "polite" });
  const heading = el("h3", { id: `titre-${id}`, tabindex: "-1" }, title);
  const close = () => {
    box.replaceChildren();
    (opener.isConnected ? opener : fallback()).focus();
  };
  const form = el(
    "form",
    { class: "formulaire", novalidate: true, "aria-labelledby": heading.id },
    heading,
    el("div", { class: "fr-select-group champ" }, el("label", { class: "fr-label", for: code.id }, "Motif (obligatoire)"), code),
    el(
      "div",
      { class: "fr-input-group champ" },
      el("label", { class: "fr-label", for: text.id }, "Précisions (facultatif)"),
      el("p", { class: "fr-hint-text", id: `${id}-aide` }, "200 caractères au plus, sans nom ; elles restent à votre autorité."),
      text,
    ),
    result,
    el(
      "div",
      { class: "boutons" },
      el("button", { type: "submit", class: "fr-btn bouton principal" }, submit),
      el("button", { type: "button", class: "fr-btn fr-btn--secondary bouton secondaire", onclick: close }, closeLabel),
    ),
  );
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  const key = { value: null };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!code.value) {
      result.replaceChildren(el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert" }, "Choisissez le motif dans la liste."));
      code.focus();
      return;
    }
    const body = { reason_code: code.value };
    if (text.value.trim()) body.reason = text.value.trim();
    if (!key.value) key.value = newKey(); // a retry of the same form is recorded once
    state.lastAction = Date.now();
    try {
      await send(body, key.value);
      box.replaceChildren();
    } catch (error) {
      if (!(error instanceof ApiError && error.network)) key.value = null;
      result.replaceChildren(el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert" }, explain(error)));
    }
  });
  box.replaceChildren(form);
  heading.focus();
}

/** « Annuler… » on the waiting list: POST /v1/requests/{id}/cancel with a cancellation code. */
function openCancel(request, opener) {
  outcomeForm({
    box: $("action-attente"),
    id: "annulation",
    title: `Annuler la demande ${request.reference}`,
    options: PAGE.cancellation_reasons || [],
    submit: "Annuler la demande",
    close: "Ne pas annuler",
    opener,
    fallback: () => $("titre-attente"),
    send: async (body, key) => {
      await api(`/v1/requests/${request.id}/cancel`, { method: "POST", body, headers: { "Idempotency-Key": key } });
      announce(announcer, `Demande ${request.reference} annulée.`);
      await Promise.all([loadRequests(), loadIndicators().catch(() => null)]);
      renderAll();
      $("titre-attente").setAttribute("tabindex", "-1");
      $("titre-attente").focus();
    },
  });
}

/** « Sortie… » on the children placed: POST /v1/placements/{hold}/exit with an exit code. */
function openExit(request, opener) {
  outcomeForm({
    box: $("action-accueil"),
    id: "sortie",
    title: `Enregistrer la sortie — ${request.reference}`,
    options: PAGE.exit_reasons || [],
    submit: "Enregistrer la sortie",
    close: "Annuler",
    opener,
    fallback: () => $("titre-accueillis"),
    send: async (body, key) => {
      await api(`/v1/placements/${request.hold.id}/exit`, { method: "POST", body, headers: { "Idempotency-Key": key } });
      announce(announcer, `Sortie de ${request.reference} enregistrée : la place est de nouveau libre.`);
      await loadPlaced();
      renderPlaced();
      $("titre-accueillis").setAttribute("tabindex", "-1");
      $("titre-accueillis").focus();
    },
  });
}

function renderPlaced() {
  const body = $("table-accueillis").tBodies[0];
  const rows = state.placed.filter((r) => r.hold);
  if (!rows.length) {
    body.replaceChildren(emptyRow(4, "Aucun enfant accueilli par Places en ce moment."));
    return;
  }
  body.replaceChildren(
    ...rows.map((r) =>
      el(
        "tr",
        { id: `p-${r.id}` },
        el("th", { scope: "row" }, r.reference),
        el("td", {}, targetName(r.hold.target)),
        el("td", { class: "nombre" }, fmt.n(r.hold.places)),
        el(
          "td",
          {},
          el(
            "button",
            { type: "button", class: "fr-btn fr-btn--secondary fr-btn--sm bouton petit secondaire", onclick: (event) => openExit(r, event.currentTarget) },
            "Sortie…",
            el("span", { class: "visuellement-cache" }, ` — ${r.reference}`),
          ),
        ),
      ),
    ),
  );
}

// --- indicators of children and their drill-down to the requests (#18) ---------------------

function renderIndicators() {
  const c = state.children;
  if (!c) return;
  $("i-extraction").textContent = `Extraction du ${fmt.day(c.extracted_on)}.`;
  $("i-attente").textContent = fmt.n(c.children_waiting);
  const delay = c.execution_delay_days;
  $("i-delai").textContent = delay.median === null ? "—" : `${fmt.dec(delay.median)} j`;
  $("i-delai-detail").textContent = `90e centile : ${delay.p90 === null ? "—" : `${fmt.dec(delay.p90)} j`} ; ${fmt.plural(delay.admissions, "admission", "admissions")}`;
  const drill = (kind, value, text, n) =>
    el(
      "li",
      {},
      el(
        "button",
        {
          type: "button",
          class: "fr-btn fr-btn--tertiary fr-btn--sm bouton petit secondaire",
          "aria-pressed": state.drill?.kind === kind && state.drill?.value === value ? "true" : "false",
          dataset: { indicateur: `${kind}:${value}` },
          onclick: () => openDrill(kind, value),
        },
        `${text} : ${fmt.plural(n, "enfant", "enfants")}`,
      ),
    );
  $("i-non-executees").replaceChildren(...NOT_EXECUTED_DAYS.map((d) => drill("days", d, `À ${d} jours ou plus`, c.not_executed[String(d)])));
  $("i-situations").replaceChildren(...(PAGE.situations || []).map(([code, label]) => drill("situation", code, label, c.situations[code] ?? 0)));
  const body = $("table-i-refus").tBodies[0];
  body.replaceChildren(
    ...Object.entries(REFUSALS).map(([code, label]) => el("tr", {}, el("th", { scope: "row" }, label), el("td", { class: "nombre" }, fmt.n(c.refusals_by_reason[code] ?? 0)))),
  );
}

/** The requests behind an indicator: waiting or held, decided ``value`` days ago or more, or
 * in the waiting situation ``value``. Requests, not children: a sibling group is one row. */
function drillRows({ kind, value }) {
  const all = [...state.waiting, ...state.held];
  const rows = kind === "days" ? all.filter((r) => r.days_since_decision >= value) : all.filter((r) => (r.situation?.code || "inconnu") === value);
  return rows.sort((a, b) => b.days_since_decision - a.days_since_decision || a.reference.localeCompare(b.reference));
}

function drillTitle({ kind, value }) {
  return kind === "days" ? `Mesures non exécutées à ${value} jours ou plus` : `Enfants en attente : ${(SITUATIONS[value] || value).toLowerCase()}`;
}

function openDrill(kind, value) {
  state.drill = state.drill?.kind === kind && state.drill?.value === value ? null : { kind, value };
  renderIndicators();
  renderDrill();
  if (state.drill) $("titre-detail-indicateur").focus();
}

function renderDrill() {
  const box = $("detail-indicateur");
  if (!state.drill) {
    box.replaceChildren();
    return;
  }
  const rows = drillRows(state.drill);
  const children = rows.reduce((acc, r) => acc + r.children.length, 0);
  const close = () => {
    const was = state.drill;
    state.drill = null;
    renderIndicators();
    renderDrill();
    document.querySelector(`[data-indicateur="${was.kind}:${was.value}"]`)?.focus();
  };
  box.replaceChildren(
    el("h3", { id: "titre-detail-indicateur", tabindex: "-1" }, `${drillTitle(state.drill)} — ${fmt.plural(rows.length, "demande", "demandes")}`),
    el("p", { class: "aide" }, `${fmt.plural(children, "enfant", "enfants")} dans ces demandes, en attente ou avec une place réservée ; la plus longue attente d'abord.`),
    el(
      "div",
      { class: "fr-table tableau-defilant", tabindex: "0", role: "region", "aria-labelledby": "titre-detail-indicateur" },
      el(
        "table",
        { class: "tableau", id: "table-detail-indicateur" },
        el("caption", { class: "visuellement-cache" }, drillTitle(state.drill)),
        el(
          "thead",
          {},
          el("tr", {}, ["Référence", "État", "Jours depuis la décision", "Situation", "Enfants"].map((h, i) => el("th", { scope: "col", class: i === 2 ? "nombre" : null }, h))),
        ),
        el(
          "tbody",
          {},
          rows.length
            ? rows.map((r) =>
                el(
                  "tr",
                  {},
                  el("th", { scope: "row" }, r.reference),
                  el("td", {}, r.status === "held" ? "Place réservée" : "En attente"),
                  el("td", { class: "nombre" }, fmt.n(r.days_since_decision)),
                  el("td", {}, SITUATIONS[r.situation?.code || "inconnu"] || r.situation?.code),
                  el("td", {}, describeChildren(r.children)),
                ),
              )
            : emptyRow(5, "Aucune demande."),
        ),
      ),
    ),
    el("button", { type: "button", class: "fr-btn fr-btn--secondary fr-btn--sm bouton petit secondaire", onclick: close }, "Fermer la liste"),
  );
}

// Names of places held from this tab's search results (another authority's units and carers
// are not in this page's data); kept for the tab's lifetime only.
const HELD_NAMES = "places.noms-reservations";

function rememberTarget(target, name) {
  const names = JSON.parse(sessionStorage.getItem(HELD_NAMES) || "{}");
  names[target.id] = name;
  sessionStorage.setItem(HELD_NAMES, JSON.stringify(names));
}

function targetName(target) {
  if (target.kind === "unit") {
    const entry = state.units.get(target.id);
    if (entry) return `${entry.structure.name} — ${entry.unit.name}`;
  } else {
    const carer = state.carers.get(target.id);
    if (carer) return `Assistant familial à ${communeName(carer.commune)}`;
  }
  const remembered = JSON.parse(sessionStorage.getItem(HELD_NAMES) || "{}")[target.id];
  if (remembered) return remembered;
  return target.kind === "unit" ? "Unité hors du territoire" : "Assistant familial hors du territoire";
}

function renderHolds() {
  const body = $("table-reservations").tBodies[0];
  if (!state.held.length) {
    body.replaceChildren(emptyRow(5, "Aucune réservation en cours."));
    return;
  }
  body.replaceChildren(
    ...state.held
      .filter((r) => r.hold)
      .map((r) =>
        el(
          "tr",
          { id: `h-${r.hold.id}` },
          el("th", { scope: "row" }, r.reference),
          el("td", {}, targetName(r.hold.target)),
          el("td", { class: "nombre" }, fmt.n(r.hold.places)),
          el("td", {}, el("span", { class: "decompte-reservation", role: "timer", dataset: { expire: r.hold.expires_at } }, countdownText(r.hold.expires_at))),
          el(
            "td",
            { class: "actions" },
            el("button", { type: "button", class: "fr-btn fr-btn--sm bouton petit", onclick: () => holdAction(r, "admit") }, "Admission"),
            el(
              "button",
              { type: "button", class: "fr-btn fr-btn--secondary fr-btn--sm bouton petit secondaire", onclick: (event) => openRelease(r, event.currentTarget) },
              "Libérer…",
              el("span", { class: "visuellement-cache" }, ` — réservation de ${r.reference}`),
            ),
          ),
        ),
      ),
  );
}

function countdownText(expiresAt) {
  const left = new Date(expiresAt).getTime() - Date.now();
  return left > 0 ? fmt.countdown(left) : "échue — libération automatique en cours";
}

function tickCountdowns() {
  for (const node of document.querySelectorAll("[data-expire]")) {
    node.textContent = countdownText(node.dataset.expire);
    node.classList.toggle("urgent", new Date(node.dataset.expire).getTime() - Date.now() < 3600_000);
  }
}

async function holdAction(request, action, body) {
  hideAlert(alertBox);
  state.lastAction = Date.now();
  try {
    await api(`/v1/holds/${request.hold.id}/${action}`, { method: "POST", body, headers: { "Idempotency-Key": newKey() } });
    announce(announcer, action === "admit" ? `Admission enregistrée pour ${request.reference}.` : `Réservation de ${request.reference} libérée.`);
    await loadRequests();
    renderAll();
    // Focus to the reservations' heading: the row acted on is gone.
    $("titre-reservations").setAttribute("tabindex", "-1");
    $("titre-reservations").focus();
  } catch (error) {
    showAlert(alertBox, explain(error));
  }
}

/** « Libérer… »: a hold's release with its coded reason (api/codes.py, the statistics'
 * codes: required here) and optional precisions (200 characters at most, the authority's
 * own, never exported), in a form under the reservations. */
function openRelease(request, opener) {
  const box = $("action-reservation");
  const code = el(
    "select",
    { id: "liberation-code", class: "fr-select", required: true, "aria-required": "true" },
    el("option", { value: "" }, "— Choisir un motif —"),
    (PAGE.release_reasons || []).map(([value, label]) => el("option", { value }, label)),
  );
  const text = el("textarea", { id: "liberation-texte", class: "fr-input", maxlength: 200, rows: 2, "aria-describedby": "liberation-aide" });
  const result = el("div", { role: "status", "aria-live": "polite" });
  const heading = el("h3", { id: "titre-liberation", tabindex: "-1" }, `Libérer la réservation de ${request.reference}`);
  const close = () => {
    box.replaceChildren();
    if (opener.isConnected) opener.focus();
    else $("titre-reservations").focus();
  };
  const form = el(
    "form",
    { class: "formulaire", novalidate: true, "aria-labelledby": "titre-liberation" },
    heading,
    el("div", { class: "fr-select-group champ" }, el("label", { class: "fr-label", for: code.id }, "Motif (obligatoire)"), code),
    el(
      "div",
      { class: "fr-input-group champ" },
      el("label", { class: "fr-label", for: text.id }, "Précisions (facultatif)"),
      el("p", { class: "fr-hint-text", id: "liberation-aide" }, "200 caractères au plus ; elles restent à votre autorité."),
      text,
    ),
    result,
    el(
      "div",
      { class: "boutons" },
      el("button", { type: "submit", class: "fr-btn bouton principal" }, "Libérer"),
      el("button", { type: "button", class: "fr-btn fr-btn--secondary bouton secondaire", onclick: close }, "Annuler"),
    ),
  );
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!code.value) {
      result.replaceChildren(el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert" }, "Choisissez le motif de la libération dans la liste."));
      code.focus();
      return;
    }
    const body = { reason_code: code.value };
    if (text.value.trim()) body.reason = text.value.trim();
    box.replaceChildren();
    await holdAction(request, "release", body);
  });
  box.replaceChildren(form);
  heading.focus();
}

// --- search --------------------------------------------------------------------------------

function childRow(child = { age: 8, sex: "F", disability_profiles: [] }, index = 0) {
  const id = `enfant-${Math.random().toString(36).slice(2, 8)}`;
  const profils = Object.entries(PROFILS).map(([code, label]) =>
    el(
      "label",
      { class: "case" },
      el("input", { type: "checkbox", value: code, checked: child.disability_profiles.includes(code) }),
      ` ${label}`,
    ),
  );
  const row = el(
    "div",
    { class: "enfant", role: "group", "aria-label": `Enfant ${index + 1}` },
    el(
      "div",
      { class: "fr-input-group champ" },
      el("label", { for: `${id}-age` }, "Âge (ans)"),
      el("input", { id: `${id}-age`, type: "number", min: 0, max: 21, value: child.age, inputmode: "numeric", class: "age", required: true }),
    ),
    el(
      "div",
      { class: "fr-input-group champ" },
      el("label", { for: `${id}-sexe` }, "Sexe"),
      el(
        "select",
        { id: `${id}-sexe`, class: "sexe" },
        el("option", { value: "F", selected: child.sex === "F" }, "Fille"),
        el("option", { value: "M", selected: child.sex === "M" }, "Garçon"),
      ),
    ),
    el("details", { class: "profils", open: child.disability_profiles.length > 0 }, el("summary", {}, "Profils de handicap (MDPH)"), el("div", { class: "cases" }, profils)),
    disabilityFields(id, child),
    index > 0
      ? el("button", { type: "button", class: "fr-btn fr-btn--secondary fr-btn--sm bouton petit secondaire", onclick: () => { row.remove(); } }, "Retirer")
      : null,
  );
  // The notification and the service mean something only with a profile: shown with one.
  row.querySelector(".profils").addEventListener("change", () => {
    row.querySelector(".suite-handicap").hidden = !row.querySelector(".profils input:checked");
  });
  return row;
}

/** A child's MDPH notification (the CDAPH's decision, CASF L241-6) and the service that
 * follows them (IME, SESSAD…: its commune's distance to each offer is scored), shown only
 * when a profile is chosen: the API refuses them without one. */
function disabilityFields(id, child) {
  const service = child.disability_service || {};
  const notified = child.mdph_notified === true ? "oui" : child.mdph_notified === false ? "non" : "";
  const hint = (text) => el("span", { class: "fr-hint-text" }, text);
  return el(
    "div",
    { class: "suite-handicap", hidden: !child.disability_profiles.length },
    el(
      "div",
      { class: "fr-select-group champ" },
      el("label", { class: "fr-label", for: `${id}-mdph` }, "Notification MDPH", hint("décision de la CDAPH")),
      el(
        "select",
        { id: `${id}-mdph`, class: "fr-select mdph" },
        el("option", { value: "", selected: notified === "" }, "Inconnue"),
        el("option", { value: "oui", selected: notified === "oui" }, "Oui, notifiée"),
        el("option", { value: "non", selected: notified === "non" }, "Non"),
      ),
    ),
    el(
      "div",
      { class: "fr-select-group champ" },
      el("label", { class: "fr-label", for: `${id}-service` }, "Service qui suit l'enfant", hint("facultatif")),
      el(
        "select",
        { id: `${id}-service`, class: "fr-select service-type" },
        el("option", { value: "" }, "Aucun ou inconnu"),
        Object.entries(SERVICES_HANDICAP).map(([code, label]) => el("option", { value: code, selected: service.kind === code }, label)),
      ),
    ),
    el(
      "div",
      { class: "fr-input-group champ" },
      el("label", { class: "fr-label", for: `${id}-service-commune` }, "Commune du service", hint("code INSEE ou nom")),
      el("input", { id: `${id}-service-commune`, class: "fr-input service-commune", list: "communes-dep", autocomplete: "off", value: service.commune || "" }),
    ),
  );
}

function setChildren(children) {
  $("liste-enfants").replaceChildren(...children.map((c, i) => childRow(c, i)));
}

function readChildren() {
  return [...document.querySelectorAll("#liste-enfants .enfant")].map((row) =>
    withDisability(
      {
        age: Number(row.querySelector(".age").value),
        sex: row.querySelector(".sexe").value,
        disability_profiles: [...row.querySelectorAll(".profils input:checked")].map((i) => i.value),
      },
      row,
    ),
  );
}

/** The child's notification and service as the API reads them, with a profile only. */
function withDisability(child, row) {
  if (!child.disability_profiles.length) return child;
  const notified = row.querySelector(".mdph").value;
  if (notified) child.mdph_notified = notified === "oui";
  const kind = row.querySelector(".service-type").value;
  const commune = row.querySelector(".service-commune").value.trim();
  if (kind || commune) child.disability_service = { kind, commune: communeCode(commune) || commune };
  return child;
}

/** What is wrong with the children's disability services, in French, and the field to fix. */
function serviceProblem() {
  const rows = [...document.querySelectorAll("#liste-enfants .enfant")];
  for (const [i, child] of readChildren().entries()) {
    const service = child.disability_service;
    if (!service) continue;
    const who = rows.length > 1 ? ` de l'enfant ${i + 1}` : "";
    if (!service.kind) return [`Choisissez le service qui suit l'enfant${who}, ou effacez sa commune.`, rows[i].querySelector(".service-type")];
    if (!/^[0-9][0-9AB][0-9]{3}$/.test(service.commune)) {
      return [`Commune du service${who} inconnue : saisissez un code INSEE (par exemple 69123) ou choisissez dans la liste.`, rows[i].querySelector(".service-commune")];
    }
  }
  return null;
}

function chooseRequest(request) {
  state.selected = request;
  setChildren(request.children);
  $("r-mode").value = request.care_mode;
  $("r-urgence").value = request.urgency;
  $("r-origine").value = request.origin.commune || `${request.origin.lat},${request.origin.lon}`;
  const box = $("demande-choisie");
  box.replaceChildren(
    "Recherche pour la demande ",
    el("strong", {}, request.reference),
    ` (${fmt.plural(request.days_since_decision, "jour", "jours")} depuis la décision). Le bouton « Réserver » bloque la place pour 24 h. `,
    el("button", { type: "button", class: "fr-btn fr-btn--secondary fr-btn--sm bouton petit secondaire", onclick: clearRequest }, "Ne plus chercher pour cette demande"),
  );
  box.hidden = false;
  renderWaiting();
  $("titre-recherche").scrollIntoView({ behavior: "smooth" });
  $("form-recherche").querySelector("input.age")?.focus({ preventScroll: true });
}

function clearRequest() {
  state.selected = null;
  $("demande-choisie").hidden = true;
  renderWaiting();
  if (state.results) renderResults();
}

/** An INSEE code typed, or the code of a commune of the territory named (null: unknown). */
function communeCode(raw) {
  if (/^[0-9][0-9AB][0-9]{3}$/.test(raw)) return raw;
  const wanted = raw.toLocaleLowerCase("fr");
  for (const c of state.communes.values()) {
    if (c.name.toLocaleLowerCase("fr") === wanted) return c.insee;
  }
  return null;
}

function origin() {
  const raw = $("r-origine").value.trim();
  const point = raw.match(/^(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)$/);
  if (point) return { lat: Number(point[1]), lon: Number(point[2]) };
  const commune = communeCode(raw);
  return commune ? { commune } : null;
}

async function search(event) {
  event.preventDefault();
  const errorBox = $("erreur-recherche");
  hideAlert(errorBox);
  const from = origin();
  if (!from) {
    showAlert(errorBox, "Commune d'origine inconnue : saisissez un code INSEE (par exemple 69123) ou choisissez dans la liste.");
    $("r-origine").focus();
    return;
  }
  const children = readChildren();
  if (!children.length || children.some((c) => !Number.isInteger(c.age) || c.age < 0 || c.age > 21)) {
    showAlert(errorBox, "Indiquez l'âge de chaque enfant (0 à 21 ans).");
    return;
  }
  const problem = serviceProblem();
  if (problem) {
    showAlert(errorBox, problem[0]);
    problem[1].focus();
    return;
  }
  const body = {
    children,
    origin: from,
    care_mode: $("r-mode").value,
    urgency: $("r-urgence").value,
    max_distance_km: Math.min(1200, Math.max(1, Number($("r-distance").value) || 60)),
    limit: 20,
  };
  const results = $("resultats");
  results.replaceChildren(el("p", { class: "aide" }, "Recherche en cours…"));
  try {
    state.results = await api("/v1/search", { method: "POST", body });
    state.results.children = children;
    await ensureCommunes(state.results.proposals.map((p) => p.commune));
    renderResults();
    renderResultsOnMap();
    $("resume-resultats")?.focus();
  } catch (error) {
    results.replaceChildren();
    showAlert(errorBox, explain(error));
  }
}

async function ensureCommunes(codes) {
  const missing = [...new Set(codes)].filter((c) => !state.communes.has(c));
  if (!missing.length) return;
  const found = await api(`/ui/geo/communes?insee=${missing.join(",")}`);
  for (const c of found.items) state.communes.set(c.insee, c);
}

function proposalName(p) {
  // The unit's name when this page knows it (its own authority's units): two units of one
  // establishment are two offers.
  const unit = p.target.kind === "unit" ? state.units.get(p.target.id)?.unit?.name : null;
  if (p.structure) return `${p.structure.name}${unit ? ` — ${unit}` : ""}${p.category ? ` (${CATEGORIES[p.category] || p.category})` : ""}`;
  return "Assistant familial";
}

function renderResults() {
  const box = $("resultats");
  const { proposals, relaxations, tried } = state.results;
  const labels = PAGE.relaxations || {};
  const intro = [];
  if (relaxations.length) {
    intro.push(
      el("p", { class: "fr-alert fr-alert--info fr-alert--sm note" }, "Rien ne correspondait exactement : critères assouplis, dans l'ordre — ", relaxations.map((r) => labels[r] || r).join(" ; "), "."),
    );
  }
  if (!proposals.length) {
    box.replaceChildren(
      ...intro,
      el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte" }, "Aucune place trouvée, même en assouplissant. Étapes essayées : ", tried.map((t) => labels[t] || t).join(" ; "), "."),
    );
    return;
  }
  box.replaceChildren(
    ...intro,
    el("p", { id: "resume-resultats", tabindex: "-1" }, `${fmt.plural(proposals.length, "proposition", "propositions")}, la meilleure d'abord ; les déclarations périmées sont classées après les autres.`),
    el("ol", { class: "propositions", "aria-labelledby": "resume-resultats" }, proposals.map((p, i) => proposalItem(p, i, labels))),
  );
}

/** "moins de 10 km", "10 à 30 km"…: what a placement officer weighs, not the decimals. */
function distanceBand(km) {
  for (const [limit, label] of [[10, "moins de 10 km"], [30, "10 à 30 km"], [60, "30 à 60 km"], [150, "60 à 150 km"]]) {
    if (km < limit) return label;
  }
  return "plus de 150 km";
}

/** One proposal, told apart from the others: place, commune, distance band, ages, free
 * places and when, how fresh the declaration is; its button named after it. */
function proposalItem(p, i, labels) {
  const name = proposalName(p);
  const where = communeName(p.commune);
  const days = Math.floor(p.declared_age_days);
  const freshness = p.stale
    ? el("span", { class: "fr-badge fr-badge--sm fr-badge--error" }, `périmée (${fmt.plural(days, "jour", "jours")})`)
    : el("span", { class: "fr-badge fr-badge--sm fr-badge--success" }, days < 1 ? "déclarée aujourd'hui" : `déclarée il y a ${fmt.plural(days, "jour", "jours")}`);
  const ladder = p.relaxed.filter((r) => r !== DISABILITY_UNSTATED);
  const silent = p.relaxed.includes(DISABILITY_UNSTATED) || p.disability_level === "unstated";
  return el(
    "li",
    { class: `proposition${p.stale ? " perimee" : ""}` },
    el("h3", { class: "titre-proposition" }, `${i + 1}. ${name}`),
    el(
      "p",
      { class: "faits" },
      `${where} (${p.department}) · ${distanceBand(p.distance_km)} · `,
      el("strong", {}, fmt.plural(p.free_places, "place libre", "places libres")),
      p.temporality !== "current" ? ` ${ECHEANCES[p.temporality] || p.temporality}` : " maintenant",
      ` · ${p.ages}`,
      p.children.length < state.results.children.length ? ` · enfants ${p.children.map((c) => c + 1).join(", ")}` : "",
    ),
    el(
      "p",
      { class: "badges" },
      freshness,
      p.outside_department ? el("span", { class: "fr-badge fr-badge--sm fr-badge--info" }, "hors département") : null,
      // The ladder is cumulative: its last step says how far the search had to go. An offer
      // silent on a child's profile is the relaxation disability_unstated, said apart.
      ladder.length ? el("span", { class: "fr-badge fr-badge--sm fr-badge--warning" }, `assoupli : ${labels[ladder.at(-1)] || ladder.at(-1)}`) : null,
      p.disability_level && p.disability_level !== "unstated"
        ? el("span", { class: "fr-badge fr-badge--sm fr-badge--info" }, `handicap : ${NIVEAUX_HANDICAP[p.disability_level] || p.disability_level}`)
        : null,
      silent ? el("span", { class: "fr-badge fr-badge--sm fr-badge--warning" }, labels[DISABILITY_UNSTATED] || NIVEAUX_HANDICAP.unstated) : null,
    ),
    el(
      "details",
      {},
      el("summary", {}, "Pourquoi ?", el("span", { class: "visuellement-cache" }, ` — ${name}, ${where}`), ` (score ${fmt.dec(p.score)})`),
      el("ul", { class: "raisons" }, p.reasons.map((r) => el("li", {}, `${CRITERES[r.criterion] || r.criterion} : ${r.detail} (+${fmt.dec(r.contribution)})`))),
    ),
    state.selected
      ? el(
          "button",
          { type: "button", class: "fr-btn fr-btn--sm bouton petit", onclick: () => reserve(p) },
          "Réserver",
          el("span", { class: "visuellement-cache" }, ` — ${name}, ${where}, n° ${i + 1}`),
        )
      : null,
  );
}

async function reserve(proposal) {
  const request = state.selected;
  if (!request) return;
  hideAlert(alertBox);
  state.lastAction = Date.now();
  try {
    const hold = await api("/v1/holds", {
      method: "POST",
      headers: { "Idempotency-Key": newKey() },
      body: { request_id: request.id, target: proposal.target, expires_in_minutes: 1440 },
    });
    rememberTarget(proposal.target, `${proposalName(proposal)} à ${communeName(proposal.commune)} (${proposal.department})`);
    announce(announcer, `Réservation créée pour ${request.reference} : ${proposalName(proposal)}, jusqu'au ${fmt.dateTime(hold.expires_at)}.`);
    clearRequest();
    state.results = null;
    $("resultats").replaceChildren();
    renderResultsOnMap();
    await loadRequests();
    renderAll();
    // Focus to the reservations, where the new hold and its countdown are.
    $("titre-reservations").setAttribute("tabindex", "-1");
    $("titre-reservations").focus();
  } catch (error) {
    showAlert(alertBox, `Réservation impossible. ${explain(error)}`);
  }
}

// --- live events ---------------------------------------------------------------------------

const reloadRequests = coalesce(async () => {
  try {
    await Promise.all([loadRequests(), loadPlaced(), loadIndicators().catch(() => null)]);
    renderWaiting();
    renderHolds();
    renderPlaced();
    renderIndicators();
    renderDrill();
    renderFigures();
  } catch (error) {
    showAlert(alertBox, explain(error));
  }
}, 400);

const reloadOffer = coalesce(async () => {
  try {
    await loadOffer();
    renderOffer();
  } catch (error) {
    showAlert(alertBox, explain(error));
  }
}, 400);

const renderOfferSoon = coalesce(renderOffer, 50);

const reloadFigures = coalesce(async () => {
  try {
    await loadFigures();
    renderFigures();
  } catch (error) {
    state.figures = null; // the figures of the lists shown, rather than stale ones
    renderFigures();
  }
}, 400);

function flash(id) {
  state.flashed.set(id, Date.now() + 4000);
  setTimeout(renderOfferSoon, 4100);
}

const SNAPSHOT_FIELDS = ["unit_id", "temporality", "version", "declared_at", "declared_by", "installed", "occupied", "reserved", "closed", "available", "additional", "available_gender"];

function onCapacity(data) {
  const entry = state.units.get(data.unit_id);
  if (!entry) {
    reloadOffer(); // a unit we do not know yet: a new structure
    return;
  }
  const snapshot = Object.fromEntries(SNAPSHOT_FIELDS.map((k) => [k, data[k]]));
  const { unit, structure } = entry;
  if (data.temporality === "current") {
    if (unit.capacity && unit.capacity.version >= data.version) return;
    unit.capacity = snapshot;
    unit.installed = data.installed;
  } else {
    const forecasts = unit.forecasts || (unit.forecasts = []);
    const i = forecasts.findIndex((s) => s.temporality === data.temporality);
    if (i >= 0 && forecasts[i].version >= data.version) return;
    if (i >= 0) forecasts[i] = snapshot;
    else forecasts.push(snapshot);
  }
  flash(`u-${unit.id}`);
  renderOfferSoon();
  announce(
    announcer,
    `Mise à jour en direct : ${structure.name} — ${unit.name}, ${fmt.plural(data.available, "place libre", "places libres")} ${ECHEANCES[data.temporality] || ""}.`,
  );
}

function onCarer(data) {
  const known = state.carers.get(data.id);
  if (known && known.version >= data.version) return;
  if (data.authority !== CODE) return;
  state.carers.set(data.id, data);
  flash(`c-${data.commune}`);
  renderOfferSoon();
  announce(announcer, `Mise à jour en direct : assistant familial à ${communeName(data.commune)}, ${fmt.plural(data.available_places, "place libre", "places libres")}.`);
}

/** A refusal sends the child back to the waiting list: say so, with the reason given. */
async function onRefused(data) {
  try {
    await loadRequests();
    renderWaiting();
    renderHolds();
    renderFigures();
  } catch (error) {
    showAlert(alertBox, explain(error));
  }
  const request = state.waiting.find((r) => r.id === data.request_id);
  const who = data.target?.kind === "carer" ? "L'assistant familial" : "L'établissement";
  const labels = REFUSALS;
  const why = [data.reason_code ? labels[data.reason_code] || data.reason_code : null, data.reason ? `« ${data.reason} »` : null]
    .filter(Boolean)
    .join(" — ");
  const text =
    `${who} a refusé l'orientation${request ? ` de ${request.reference}` : ""}` +
    `${why ? ` : ${why}` : ""}. La demande attend de nouveau une place.`;
  showAlert($("avis-refus"), text);
  announce(announcer, text);
}

let agrements = null; // the agréments panel and the placements to review (agrements.js)

function onEvent(message) {
  reloadFigures(); // every event of this feed may move a key figure
  agrements?.onEvent(message);
  switch (message.type) {
    case "capacity.updated":
      onCapacity(message.data);
      break;
    case "carer.availability_updated":
      onCarer(message.data);
      break;
    case "hold.refused":
      onRefused(message.data);
      break;
    case "request.created":
    case "request.updated":
    case "hold.created":
    case "hold.released":
    case "hold.expired":
    case "admission.recorded":
    case "exit.recorded":
      reloadRequests();
      if (Date.now() - state.lastAction > 3000) announce(announcer, "Liste d'attente et réservations mises à jour.");
      break;
    default:
      break;
  }
}

// --- start ---------------------------------------------------------------------------------

async function main() {
  fillSelect($("f-mode"), MODES, "Tous les modes");
  fillSelect($("f-profil"), PROFILS, "Sans condition");
  fillSelect($("r-mode"), MODES);
  $("r-mode").value = "durable";
  setChildren([{ age: 8, sex: "F", disability_profiles: [] }]);
  const current = await requireSession(["department"], alertBox);
  if (!current) return;
  // The session's authority as /v1/me says it (a former token's department claim mapped).
  if (current.authority !== CODE) {
    showAlert(
      alertBox,
      `Ce tableau de bord est celui de ${PAGE.name} (${CODE}) ; votre compte est celui de l'autorité ${current.authority}.`,
      el("a", { href: ownDashboard(current) }, "Aller à mon tableau de bord"),
    );
    return;
  }
  $("filtres").addEventListener("input", renderOffer);
  $("filtre-attente").addEventListener("input", () => {
    state.waitingPage = 1;
    renderWaiting();
  });
  $("filtres").addEventListener("reset", () => setTimeout(renderOffer, 0));
  $("form-recherche").addEventListener("submit", search);
  $("ajouter-enfant").addEventListener("click", () => {
    const list = $("liste-enfants");
    list.append(childRow(undefined, list.children.length));
    list.lastElementChild.querySelector("input")?.focus();
  });
  $("lien-acces").hidden = !may(current, "audit.read");
  agrements = setUpAgrements({ code: CODE, current, communeName, announcer });
  placement = may(current, "placement");
  steering = may(current, "stats.read");
  $("indicateurs").hidden = !placement || !steering;
  $("lien-indicateurs").hidden = $("indicateurs").hidden;
  if (!placement) {
    // No children's data for this function: its sections are hidden rather than failing,
    // and the live feed (the placement service's) is not opened.
    for (const id of ["indicateurs", "attente", "reservations", "accueillis", "recherche"]) $(id).hidden = true;
    $("liens-placement").hidden = true;
    const status = $("etat-direct");
    status.dataset.etat = "arret";
    status.querySelector(".texte").textContent = "Pas de flux en direct pour cette fonction : rechargez la page pour voir les changements.";
    try {
      await loadOffer();
      await setUpMap();
      await Promise.all([loadFigures(), agrements.load()]);
      renderAll();
    } catch (error) {
      showAlert(alertBox, `Chargement impossible. ${explain(error)}`);
    }
    return;
  }
  const feed = new LiveFeed(`/ws/authorities/${encodeURIComponent(CODE)}`, {
    onEvent,
    onResync: () => Promise.all([loadAll(), agrements.load()]),
    status: $("etat-direct"),
    reconnectButton: $("reconnecter"),
  });
  feed.start();
  try {
    // The first screen first (usable: the waiting list drawn, the search ready), then the
    // offer with its map and the agréments, whose reads would compete for a slow link.
    await Promise.all([loadRequests(), loadFigures()]);
    renderWaiting();
    renderHolds();
    renderFigures();
    const rest = agrements.load();
    // The indicators and the children placed after the first screen (not among its reads).
    const later = Promise.all([
      loadPlaced().then(renderPlaced),
      loadIndicators()
        .then(renderIndicators)
        .catch((error) => showAlert($("alerte-indicateurs"), `Indicateurs indisponibles. ${explain(error)}`)),
    ]);
    await loadOffer();
    await setUpMap();
    renderOffer();
    renderHolds(); // the held places' names, now that the offer is known
    await Promise.all([rest, later]);
    renderPlaced(); // the places' names, now that the offer is known
    restoreDraft(); // what was typed before the session expired, if it did
  } catch (error) {
    showAlert(alertBox, `Chargement impossible. ${explain(error)}`);
  } finally {
    feed.release();
  }
  setInterval(tickCountdowns, 1000);
  setInterval(() => renderOfferSoon(), 60_000); // ages ("il y a 3 min") move on
  window.placesFeed = feed; // for the browser tests and the curious
}

main();
