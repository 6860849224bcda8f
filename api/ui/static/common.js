// Shared by every page: the session (token in sessionStorage), calls to the /v1 API with
// that token, French labels of the codes, formatting, and a tiny DOM builder that never
// parses strings as HTML (API data is always inserted as text).

export const TOKEN_KEY = "places.jeton";

export const MODES = {
  urgence: "Urgence",
  durable: "Accueil durable",
  sequentiel: "Séquentiel (relais, week-ends, vacances)",
  mere_enfant: "Mère-enfant",
  mna: "Mineur non accompagné",
  jeune_majeur: "Jeune majeur (18–21 ans)",
};

export const PROFILS = {
  tsa: "Troubles du spectre autistique",
  deficience_intellectuelle: "Déficience intellectuelle",
  troubles_psychiques_comportement: "Troubles psychiques ou du comportement",
  deficience_motrice: "Déficience motrice",
  deficience_sensorielle: "Déficience sensorielle",
  polyhandicap: "Polyhandicap",
  soins_techniques: "Soins techniques (maladie chronique)",
};

/** A unit's or carer's word per disability profile (#16, graded): "TSA (spécialisé), …". */
export function profilsGradues(offer) {
  const niveaux = { specialised: "spécialisé", with_support: "avec soutien" };
  return Object.entries(offer.disability || {})
    .map(([p, niveau]) => `${PROFILS[p] || p} (${niveaux[niveau] || niveau})`)
    .join(", ");
}

/** The services that follow a child with a disability (api/disability.py, the API's codes):
 * IME, SESSAD, DITEP, IEM on a CDAPH orientation (CASF L241-6, L312-1 I 2°); CAMSP (CSP
 * L2132-4) and CMP entered directly. */
export const SERVICES_HANDICAP = {
  IME: "IME — institut médico-éducatif",
  SESSAD: "SESSAD — service d'éducation spéciale et de soins à domicile",
  DITEP: "DITEP — dispositif intégré thérapeutique, éducatif et pédagogique",
  IEM: "IEM — institut d'éducation motrice",
  CAMSP: "CAMSP — centre d'action médico-sociale précoce",
  CMP: "CMP — centre médico-psychologique",
  autre: "Autre service",
};

/** A proposal's `disability_level`: what the offer states of the children's profiles. */
export const NIVEAUX_HANDICAP = { specialised: "spécialisé", with_support: "avec soutien", unstated: "sans mention" };

export const CATEGORIES = {
  166: "Centre parental",
  172: "Pouponnière",
  175: "Foyer de l'enfance",
  176: "Village d'enfants",
  177: "MECS",
  236: "Placement familial",
  238: "Accueil familial spécialisé",
  241: "Établissement PJJ",
  378: "Établissement expérimental",
  462: "Lieu de vie et d'accueil",
};

export const ROLES = {
  structure: "Établissement",
  carer: "Assistant familial",
  department: "Département",
  national: "Pilotage national",
  authority_admin: "Administrateur d'autorité",
  operator: "Opérateur de la plateforme",
};

/** Roles that act for one authority: its placement service and its administrator. */
export const AUTHORITY_ROLES = ["department", "authority_admin"];

export const URGENCES = { immediate: "Immédiate", days: "Sous quelques jours", planned: "Programmée" };
export const MESURES = { judicial: "Judiciaire", administrative: "Administrative" };
/** What the carer declares (their own part); suspension is the agrément's, not a status. */
export const STATUTS_AF = { active: "Disponible", leave: "En congé" };

// The agrément (#15): its states as a reader sees them (as of today, SQL function
// places_agrement_state) and the coded reasons of api/codes.py, in French. The codes are the
// API's; only their labels live here.
export const ETATS_AGREMENT = {
  valid: "Valide",
  suspended: "Suspendu",
  withdrawn: "Retiré",
  expired: "Expiré",
  not_yet_valid: "Pas encore en vigueur",
};

/** Suspension (CASF L421-6: in an emergency, for at most four months). */
export const MOTIFS_SUSPENSION = {
  situation_de_danger: "Situation de danger pour les enfants accueillis",
  enquete_administrative: "Enquête administrative en cours",
  procedure_penale: "Procédure pénale en cours",
  conditions_accueil: "Conditions d'accueil non réunies",
  sante: "Raison de santé",
  anterieur_enregistrement: "Suspension antérieure à l'enregistrement dans Places",
};

/** Withdrawal of the agrément (CASF L421-6). */
export const MOTIFS_RETRAIT = {
  conditions_non_remplies: "Conditions de l'agrément non remplies",
  maltraitance: "Maltraitance ou danger pour les enfants",
  demande_assistant: "À la demande de l'assistant familial",
  cessation_activite: "Cessation d'activité",
  autre: "Autre motif",
};

/** Derogation above three children (CASF L421-5). */
export const MOTIFS_DEROGATION = {
  fratrie: "Accueil d'une fratrie",
  continuite_parcours: "Continuité du parcours de l'enfant",
  accueil_urgence: "Accueil d'urgence",
  anterieur_enregistrement: "Dérogation antérieure à l'enregistrement dans Places",
};

/** Codes only Places' migration writes (a decision recorded before Places kept reasons):
 * shown when read, never offered to a new decision. */
export const MOTIFS_HISTORIQUES = ["anterieur_enregistrement"];

/** Whether the session may do `permission` (GET /v1/me's list): pages show an action only
 * to those who may do it; the API decides all the same. */
export function may(current, permission) {
  return Boolean(current?.me?.permissions?.includes(permission));
}

export function pageData() {
  const node = document.getElementById("donnees-page");
  return node ? JSON.parse(node.textContent) : {};
}

// --- session -------------------------------------------------------------------------------
//
// The token says who signed in, not what they may do: a person's token (identity provider)
// carries no role. What the session may do comes from GET /v1/me, asked once at every page
// start (and on sign-in), kept in sessionStorage beside the token so that code running later
// (the live feed, a refresh) reads it without asking again. A person holding several live
// habilitations chooses one; its id goes with every call (X-Places-Habilitation, and
// ?habilitation= on a live feed, whose headers a browser cannot set).

export const ME_KEY = "places.moi";
export const HABILITATION_KEY = "places.habilitation";
export const HABILITATION_HEADER = "X-Places-Habilitation";

export function decodeClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "="))
        .split("")
        .map((c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0"))
        .join(""),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}

function forget() {
  for (const key of [TOKEN_KEY, ME_KEY, HABILITATION_KEY]) sessionStorage.removeItem(key);
}

/**
 * The current session, or null when there is none or its token expired: `token`, the chosen
 * `habilitation` id (or null), and what GET /v1/me said (`me`, null until asked) with its
 * `role`, scope (`authority`, `finess`, `carer_id`), `function` and `label`.
 */
export function session() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const claims = decodeClaims(token);
  if (!claims || (claims.exp && claims.exp * 1000 <= Date.now())) {
    forget();
    return null;
  }
  const me = JSON.parse(sessionStorage.getItem(ME_KEY) || "null");
  const habilitation = sessionStorage.getItem(HABILITATION_KEY);
  const grants = me?.habilitations || [];
  const grant = grants.find((g) => String(g.id) === habilitation) || (grants.length === 1 ? grants[0] : null);
  return {
    token,
    claims,
    me,
    habilitation,
    role: me?.role || null,
    authority: me?.authority || null,
    finess: me?.finess || null,
    carer_id: me?.carer_id || null,
    function: me?.function || null,
    label: grant?.function_label || null,
    /** Several live habilitations and none chosen: the person must choose. */
    mustChoose: Boolean(me && !me.role && grants.length > 1),
  };
}

/** A new token (sign-in): what was known of the former session goes with it. */
export function saveToken(token) {
  forget();
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function chooseHabilitation(id) {
  if (id === null || id === undefined) sessionStorage.removeItem(HABILITATION_KEY);
  else sessionStorage.setItem(HABILITATION_KEY, String(id));
  sessionStorage.removeItem(ME_KEY);
}

/**
 * Ask GET /v1/me for the session (under the chosen habilitation) and keep the answer. A
 * refused token (401: expired, signed out everywhere) ends the session; a chosen habilitation
 * that is no longer live (403) is forgotten and the question asked again. A network failure
 * keeps what was known. Resolves to `session()`.
 */
export async function loadSession() {
  const asked = session();
  if (!asked) return null;
  // A sign-in or a choice made meanwhile wins: an answer about another token or habilitation
  // is dropped, never stored under the new one.
  const unchanged = () =>
    sessionStorage.getItem(TOKEN_KEY) === asked.token && sessionStorage.getItem(HABILITATION_KEY) === asked.habilitation;
  try {
    const me = await api("/v1/me");
    if (unchanged()) sessionStorage.setItem(ME_KEY, JSON.stringify(me));
  } catch (error) {
    if (!unchanged()) return session();
    if (error.status === 401) forget();
    else if (error.status === 403 && asked.habilitation) {
      chooseHabilitation(null);
      return loadSession();
    } else if (!error.network) throw error;
  }
  return session();
}

export function signOut() {
  forget();
  location.assign("/ui/connexion");
}

/** POST /v1/me/sign-out-everywhere: every token of this person stops working, this one too. */
export async function signOutEverywhere() {
  let done = true;
  try {
    await api("/v1/me/sign-out-everywhere", { method: "POST" });
  } catch (error) {
    done = error.status === 401; // already refused: nothing left to close with this token
  }
  forget();
  location.assign(`/ui/connexion?deconnexion=${done ? "partout" : "echec"}`);
}

export function homeOf(current) {
  if (!current) return "/ui/connexion";
  if (current.mustChoose || (current.me && !current.role)) return "/ui/connexion";
  if (AUTHORITY_ROLES.includes(current.role)) return ownDashboard(current);
  if (current.role === "national" || current.role === "operator") return "/ui/national";
  return "/ui/declarer";
}

/** "Camille Martin — chargé·e d'orientation 69M"; a local role token: "Établissement 690000018". */
export function describeSession(current) {
  if (current.mustChoose) return `${current.me.display_name || current.me.sub} — habilitation à choisir`;
  if (current.me && !current.role) return `${current.me.display_name || current.me.sub} — sans habilitation`;
  const what = current.label || ROLES[current.role] || current.role || "…";
  const scope = current.finess || current.authority || (current.carer_id ? current.carer_id.slice(0, 8) + "…" : "");
  const described = scope ? `${what} ${scope}` : what;
  return current.me?.display_name ? `${current.me.display_name} — ${described}` : described;
}

/** A placement service's dashboard: its authority's. */
export function ownDashboard(current) {
  if (current.authority) return `/ui/autorites/${encodeURIComponent(current.authority)}`;
  return "/ui/autorites";
}

/**
 * The menu of a session: each role and function its own, every link one it may follow (the
 * API decides all the same). Signed out: the sign-in page only.
 */
export function menuOf(current) {
  const role = current?.role;
  if (!role) return [{ href: "/ui/connexion", label: "Connexion" }];
  const items = [];
  if (AUTHORITY_ROLES.includes(role)) {
    const home = ownDashboard(current);
    items.push({ href: home, label: "Tableau de bord" });
    if (may(current, "capacity.declare")) items.push({ href: "/ui/declarer", label: "Déclarer pour un assistant familial" });
    if (may(current, "stats.read")) items.push({ href: "/ui/national", label: "Pilotage national" });
    if (may(current, "audit.read") && current.authority) items.push({ href: `${home}/acces`, label: "Qui a consulté nos données" });
    if (may(current, "habilitations.manage") && current.authority) items.push({ href: `${home}/habilitations`, label: "Habilitations" });
  } else if (role === "structure" || role === "carer") {
    items.push({ href: "/ui/declarer", label: "Déclarer mes places" });
  } else if (role === "national") {
    items.push({ href: "/ui/national", label: "Pilotage national" });
  } else if (role === "operator") {
    items.push({ href: "/ui/national", label: "Pilotage national" }, { href: "/ui/declarer", label: "Déclarer" });
  }
  return items;
}

function drawMenu(current) {
  const list = document.getElementById("menu-role");
  if (!list) return;
  const here = location.pathname;
  list.replaceChildren(
    ...menuOf(current).map(({ href, label }) =>
      el(
        "li",
        { class: "fr-nav__item" },
        el("a", { class: "fr-nav__link", href, "aria-current": href === here ? "page" : null }, label),
      ),
    ),
  );
}

/** The DSFR's header menu on a phone (its own script is not loaded): the "Menu" button opens
 * the navigation as a dialog, "Fermer" or Escape closes it and gives focus back. */
function setUpMenuButton() {
  const menu = document.getElementById("menu");
  const open = document.getElementById("bouton-menu");
  const close = document.getElementById("fermer-menu");
  if (!menu || !open || !close) return;
  const toggle = (opened) => {
    menu.classList.toggle("fr-modal--opened", opened);
    open.setAttribute("aria-expanded", String(opened));
    if (opened) close.focus();
    else open.focus();
  };
  open.addEventListener("click", () => toggle(true));
  close.addEventListener("click", () => toggle(false));
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.classList.contains("fr-modal--opened")) toggle(false);
  });
}

function sessionItems(current, inMenu) {
  const several = (current.me?.habilitations || []).length > 1;
  const id = (name) => (inMenu ? null : name);
  const items = [
    el("span", { class: "qui" }, "Connecté : ", el("strong", {}, describeSession(current))),
    several &&
      el("a", { class: "fr-btn", href: "/ui/connexion?choisir=1", id: id("changer-habilitation") }, "Changer d'habilitation"),
    el("button", { type: "button", class: "fr-btn", id: id("deconnexion"), onclick: signOut }, "Se déconnecter"),
    el(
      "button",
      {
        type: "button",
        class: "fr-btn",
        id: id("deconnexion-partout"),
        title: "Ferme aussi vos sessions sur les autres onglets et appareils",
        onclick: signOutEverywhere,
      },
      "Se déconnecter partout",
    ),
  ];
  return items.filter(Boolean).map((node) => el("li", {}, node));
}

/**
 * Header: who is signed in, a way to change habilitation (several), sign out here or
 * everywhere (in the header's tools on a computer, in the menu on a phone), and the menu of
 * the session's role.
 */
export function initHeader(current = session()) {
  drawMenu(current);
  const box = document.getElementById("session");
  const inMenu = document.getElementById("session-menu");
  if (!box || !current) return current;
  box.replaceChildren(...sessionItems(current, false));
  inMenu?.replaceChildren(...sessionItems(current, true));
  return current;
}

/**
 * The page needs a session with one of `roles`: otherwise show why (not signed in, a
 * habilitation to choose, none held, another role), with the way out, and return null.
 */
export async function requireSession(roles, alertBox) {
  const current = await ready;
  // An authority's administrator may use every page of its placement service.
  const allowed = roles.includes("department") ? [...roles, "authority_admin"] : roles;
  if (current && allowed.includes(current.role)) return current;
  const back = encodeURIComponent(location.pathname + location.search);
  if (current?.mustChoose) {
    showAlert(
      alertBox,
      "Vous avez plusieurs habilitations : choisissez celle sous laquelle agir.",
      el("a", { href: `/ui/connexion?choisir=1&retour=${back}` }, "Choisir une habilitation"),
    );
  } else if (current?.me && !current.role) {
    showAlert(
      alertBox,
      `Aucune habilitation active : demandez-en une à l'administrateur de votre autorité, en lui donnant votre identifiant ${current.me.sub}.`,
    );
  } else if (current) {
    showAlert(
      alertBox,
      `Cette page est réservée aux rôles : ${roles.map((r) => ROLES[r]).join(", ")}. Vous êtes connecté comme ${describeSession(current)}.`,
    );
  } else {
    showAlert(alertBox, "Vous n'êtes pas connecté.", el("a", { href: `/ui/connexion?retour=${back}` }, "Se connecter"));
  }
  return null;
}

export function showAlert(box, message, ...extra) {
  if (!box) return;
  box.replaceChildren(message, ...(extra.length ? [" ", ...extra] : []));
  box.hidden = false;
}

export function hideAlert(box) {
  if (box) {
    box.hidden = true;
    box.replaceChildren();
  }
}

// --- API -----------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `Erreur ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** The response to `path` that amorce.js started before the modules loaded, once, if it was
 * asked with the session's current token and habilitation (else null: call again). */
async function takeEarly(path, current) {
  const entry = window.placesEarly?.get(path);
  if (!entry) return null;
  window.placesEarly.delete(path);
  if (!current || entry.token !== current.token || entry.habilitation !== current.habilitation) return null;
  return entry.response;
}

/** Call the API with the session's bearer token; JSON in, JSON out, problems as ApiError. */
export async function api(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  const current = session();
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (current) init.headers.Authorization = `Bearer ${current.token}`;
  if (current?.habilitation) init.headers[HABILITATION_HEADER] = current.habilitation;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = (method === "GET" && !Object.keys(headers).length && (await takeEarly(path, current))) || (await fetch(path, init));
  } catch (error) {
    const err = new ApiError(0, { detail: "Le service ne répond pas (réseau coupé ?)." });
    err.network = true;
    throw err;
  }
  if (response.status === 401 && path.startsWith("/v1/") && path !== "/v1/me") sessionExpired();
  if (raw && response.ok) return response;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// --- an expired session in the middle of a form ----------------------------------------------
//
// A token expires after its lifetime, possibly while someone is typing. What the page's fields
// hold is kept in this tab's sessionStorage, the person is asked to sign in again (and brought
// back here), and the page puts the fields back once it has drawn them (restoreDraft).

const draftKey = () => `places.brouillon:${location.pathname}`;

function fieldsOfPage() {
  return document.querySelectorAll("main input[id], main select[id], main textarea[id]");
}

/** Keep what the page's fields hold (by id), to put it back after signing in again. */
export function saveDraft() {
  const fields = {};
  for (const field of fieldsOfPage()) {
    if (field.type === "radio" || field.type === "checkbox") fields[field.id] = field.checked;
    else if (field.type !== "hidden") fields[field.id] = field.value;
  }
  sessionStorage.setItem(draftKey(), JSON.stringify(fields));
}

/** Put back the fields kept by saveDraft (once: the draft is then forgotten); true if any. */
export function restoreDraft() {
  const raw = sessionStorage.getItem(draftKey());
  if (!raw) return false;
  sessionStorage.removeItem(draftKey());
  for (const [id, value] of Object.entries(JSON.parse(raw))) {
    const field = document.getElementById(id);
    if (!field) continue;
    if (typeof value === "boolean") field.checked = value;
    else field.value = value;
    // "input" only: the page recomputes what it shows, and no handler of "change" (a typed
    // figure moved again, a tab switched) replays a gesture.
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }
  return true;
}

function sessionExpired() {
  saveDraft();
  forget();
  if (document.getElementById("session-expiree")) return;
  const back = encodeURIComponent(location.pathname + location.search);
  const box = el(
    "div",
    { class: "fr-alert fr-alert--warning", id: "session-expiree", role: "alert", tabindex: "-1" },
    el("h2", { class: "fr-alert__title" }, "Votre session a expiré"),
    el(
      "p",
      {},
      "Ce que vous avez saisi sur cette page est gardé dans cet onglet. ",
      el("a", { href: `/ui/connexion?retour=${back}`, id: "se-reconnecter" }, "Reconnectez-vous"),
      " : vous reviendrez ici et le retrouverez.",
    ),
  );
  document.querySelector("main")?.prepend(box);
  box.focus();
}

/** A plain-French sentence for an API error, whatever its status. */
export function explain(error) {
  if (!(error instanceof ApiError)) return `Erreur inattendue : ${error.message}`;
  if (error.network) return "Le service ne répond pas : vérifiez la connexion réseau puis réessayez.";
  const detail = error.problem.detail || "";
  switch (error.status) {
    case 401:
      return "Votre session a expiré ou n'est pas valide : reconnectez-vous.";
    case 403:
      return `Accès refusé : ${detail || "ce compte n'a pas accès à cette ressource."}`;
    case 404:
      return detail || "Introuvable.";
    case 409:
      return `Conflit : ${detail}`;
    case 413:
      return "La requête est trop volumineuse.";
    case 422:
      return `Données refusées : ${detail}`;
    default:
      return error.status >= 500
        ? `Le service a rencontré une erreur (${error.status}). Réessayez dans un instant.`
        : detail || `Erreur ${error.status}.`;
  }
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every page of a paginated list (``{items, total}``). */
export async function allPages(path, pageSize) {
  const items = [];
  const sep = path.includes("?") ? "&" : "?";
  for (let offset = 0; ; offset += pageSize) {
    const page = await api(`${path}${sep}limit=${pageSize}&offset=${offset}`);
    items.push(...page.items);
    if (page.items.length < pageSize || items.length >= page.total) return items;
  }
}

// --- formatting ----------------------------------------------------------------------------

const nf = new Intl.NumberFormat("fr-FR");
const nf2 = new Intl.NumberFormat("fr-FR", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const dtf = new Intl.DateTimeFormat("fr-FR", { dateStyle: "short", timeStyle: "short" });
const df = new Intl.DateTimeFormat("fr-FR", { dateStyle: "short" });
const tf = new Intl.DateTimeFormat("fr-FR", { timeStyle: "medium" });

export const fmt = {
  n: (v) => (v === null || v === undefined ? "—" : nf.format(v)),
  dec: (v) => (v === null || v === undefined ? "—" : nf2.format(v)),
  dateTime: (v) => (v ? dtf.format(new Date(v)) : "—"),
  date: (v) => (v ? df.format(new Date(v)) : "—"),
  /** A calendar day of the API ("2026-05-01") as written in France (01/05/2026), whatever
   * the browser's time zone (new Date("2026-05-01") is midnight UTC, the day before in
   * Guadeloupe). */
  day(v) {
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(v || "");
    return m ? `${m[3]}/${m[2]}/${m[1]}` : "—";
  },
  time: (v) => tf.format(v ? new Date(v) : new Date()),
  /** "il y a 3 h", "il y a 2 j" */
  age(v) {
    if (!v) return "jamais";
    const s = Math.max(0, (Date.now() - new Date(v).getTime()) / 1000);
    if (s < 60) return "à l'instant";
    if (s < 3600) return `il y a ${Math.floor(s / 60)} min`;
    if (s < 86400) return `il y a ${Math.floor(s / 3600)} h`;
    return `il y a ${Math.floor(s / 86400)} j`;
  },
  ageDays: (v) => (v ? (Date.now() - new Date(v).getTime()) / 86400000 : Infinity),
  /** "2 h 05 min 09 s" */
  countdown(ms) {
    if (ms <= 0) return "échue";
    const s = Math.floor(ms / 1000);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    const pad = (x) => String(x).padStart(2, "0");
    return h > 0 ? `${h} h ${pad(m)} min ${pad(sec)} s` : `${m} min ${pad(sec)} s`;
  },
  plural: (n, one, many) => `${nf.format(n)} ${n > 1 ? many : one}`,
};

// --- DOM -----------------------------------------------------------------------------------

/** el("td", {class: "nombre"}, "3") — attributes, `on*` listeners, children (text or nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function svgEl(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Fill a <select> from a vocabulary, with an optional "all" first option. */
/**
 * DSFR tabs (`fr-tabs`) without the DSFR's script (the pages load none of it): the tab list is
 * one Tab stop (the selected tab); the arrows, Home and End move to another tab and select it
 * (automatic activation, as the DSFR does); a click selects. The selected tab's panel shows,
 * the others are hidden. `onSelect(tab, panel)` is called after each selection.
 */
export function setUpTabs(root, onSelect) {
  const tabs = [...root.querySelectorAll('[role="tab"]')];
  const panelOf = (tab) => document.getElementById(tab.getAttribute("aria-controls"));
  const select = (chosen, focus) => {
    for (const tab of tabs) {
      const on = tab === chosen;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      panelOf(tab).hidden = !on;
      panelOf(tab).classList.toggle("fr-tabs__panel--selected", on);
    }
    if (focus) chosen.focus();
    onSelect(chosen, panelOf(chosen));
  };
  const moves = { ArrowRight: 1, ArrowLeft: -1 };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab, false));
    tab.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(tab);
      let next = null;
      if (event.key in moves) next = (i + moves[event.key] + tabs.length) % tabs.length;
      else if (event.key === "Home") next = 0;
      else if (event.key === "End") next = tabs.length - 1;
      if (next === null) return;
      event.preventDefault();
      select(tabs[next], true);
    });
  }
}

export function fillSelect(select, vocabulary, allLabel) {
  const options = Object.entries(vocabulary).map(([code, label]) => el("option", { value: code }, label));
  if (allLabel) options.unshift(el("option", { value: "" }, allLabel));
  select.replaceChildren(...options);
}

/** Announce a short sentence in an aria-live region (and show it, with its time). */
export function announce(region, text) {
  if (!region) return;
  region.textContent = `${fmt.time()} — ${text}`;
}

/**
 * Run `fn` `ms` after the first call of a burst, once, and never two at a time. Unlike a
 * debounce, a steady stream of live events cannot postpone the refresh forever, and a slow
 * answer cannot land after a newer one.
 */
export function coalesce(fn, ms) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    running = true;
    try {
      await fn();
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    if (running) again = true;
    else if (!timer) timer = setTimeout(run, ms);
  };
  return schedule;
}

/** The session as /v1/me says it, the header drawn: every page starts by awaiting it
 * (asked last, once everything above is defined). */
setUpMenuButton();

export const ready = loadSession()
  .catch(() => session())
  .then((current) => initHeader(current));
