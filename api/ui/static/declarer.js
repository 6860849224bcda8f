// Declaration page: an establishment declares each unit's places, a carer their availability.
// Big + / − controls (usable with a thumb), the last declaration and its age, sent with an
// Idempotency-Key (kept while a send is in doubt, so a retry never writes twice) and
// If-Match (the version the form started from, so nobody's declaration is overwritten
// blindly); 409 and 422 are explained in plain French.

import {
  AUTHORITY_ROLES,
  ETATS_AGREMENT,
  MODES,
  MOTIFS_DEROGATION,
  MOTIFS_RETRAIT,
  MOTIFS_SUSPENSION,
  STATUTS_AF,
  ApiError,
  api,
  el,
  explain,
  fmt,
  hideAlert,
  may,
  newKey,
  pageData,
  profilsGradues,
  requireSession,
  restoreDraft,
  session,
  showAlert,
} from "./common.js";

const PAGE = pageData();
const $ = (id) => document.getElementById(id);
const alertBox = $("alerte-page");
const root = $("declarant");

const TEMPORALITES = [
  ["current", "Maintenant"],
  ["h24", "Dans 24 h"],
  ["h48", "Dans 48 h"],
  ["d7", "Dans 7 jours"],
];
const COMPTEURS = {
  available: "Places disponibles",
  occupied: "Places occupées",
  reserved: "Places réservées",
  closed: "Places fermées",
  installed: "Places installées",
  additional: "Places supplémentaires",
  available_places: "Places disponibles",
  until: "Date de fin",
  status: "Statut",
  leave_from: "Début du congé",
  "preferences.age_min": "Âge minimum souhaité",
  "preferences.age_max": "Âge maximum souhaité",
  "preferences.care_modes": "Modes d'accueil souhaités",
  "preferences.age_min_months": "Âge minimum souhaité",
  "preferences.age_max_months": "Âge maximum souhaité",
  "preferences.timings": "Modes d'accueil souhaités",
  "preferences.publics": "Modes d'accueil souhaités",
  "preferences.formulas": "Modes d'accueil souhaités",
  available_gender: "Public des places disponibles",
};
const ERROR_AT = {
  "preferences.age_min_months": "preferences.age_min",
  "preferences.age_max_months": "preferences.age_max",
  "preferences.timings": "preferences.care_modes",
  "preferences.publics": "preferences.care_modes",
  "preferences.formulas": "preferences.care_modes",
};
const OTHER_COUNTS = ["occupied", "reserved", "closed", "installed", "additional"];

let scope = {}; // ?finess= / ?carer= for the operator and an authority's roles

// --- helpers -------------------------------------------------------------------------------

function stepper(id, label, value, { big = false, min = 0, max = 5000, onChange }) {
  const input = el("input", {
    id,
    type: "number",
    inputmode: "numeric",
    min,
    max,
    value,
    class: "valeur",
    "aria-describedby": `${id}-aide`,
  });
  const set = (v) => {
    const n = Math.max(min, Math.min(max, Number.isFinite(v) ? v : 0));
    input.value = String(n);
    onChange();
  };
  input.addEventListener("input", onChange);
  const minus = el(
    "button",
    { type: "button", class: "moins", "aria-label": `${label} : retirer une`, onclick: () => set(Number(input.value) - 1) },
    "−",
  );
  const plus = el(
    "button",
    { type: "button", class: "plus", "aria-label": `${label} : ajouter une`, onclick: () => set(Number(input.value) + 1) },
    "+",
  );
  return el(
    "div",
    { class: `compteur${big ? " grand" : ""}` },
    el("label", { for: id }, label),
    el("div", { class: "commandes" }, minus, input, plus),
    el("p", { class: "aide", id: `${id}-aide` }),
  );
}

/**
 * The counter of free places, one gesture each way: "+1 libre" when a child leaves (a place
 * goes from occupied, or from the places not yet counted, to available), "−1 libre" when a
 * child arrives (available to occupied). The other counters follow, so the total never
 * exceeds the capacity: the invariant holds by construction, not by a refusal afterwards.
 * A button that cannot act is disabled and says why.
 */
function freeCounter(id, value, { onChange, counts }) {
  const input = el("input", {
    id,
    type: "number",
    inputmode: "numeric",
    min: 0,
    max: 5000,
    value,
    class: "valeur",
    "aria-describedby": `${id}-aide`,
  });
  const why = el("p", { class: "aide", id: `${id}-aide` });
  const move = (delta) => {
    const c = counts();
    const slack = c.installed + c.additional - (c.occupied + c.reserved + c.available + c.closed);
    if (delta > 0) {
      // From the uncounted places first (a first declaration), then from the occupied ones.
      const fromOccupied = Math.max(0, delta - Math.max(0, slack));
      if (fromOccupied > c.occupied) return;
      c.setOccupied(c.occupied - fromOccupied);
    } else {
      if (c.available + delta < 0) return;
      c.setOccupied(c.occupied - delta);
    }
    input.value = String(c.available + delta);
    onChange();
  };
  let last = Number(value);
  input.addEventListener("focus", () => {
    last = Number(input.value);
  });
  input.addEventListener("change", () => {
    // A typed figure moves places the same way, as far as the counters allow.
    const typed = Math.max(0, Math.round(Number(input.value) || 0));
    input.value = String(last);
    move(typed - last);
    last = Number(input.value);
  });
  const minus = el(
    "button",
    { type: "button", class: "moins", "aria-describedby": `${id}-aide`, onclick: () => move(-1) },
    "−1 libre",
  );
  const plus = el(
    "button",
    { type: "button", class: "plus", "aria-describedby": `${id}-aide`, onclick: () => move(1) },
    "+1 libre",
  );
  /** Enable each button only when it can act, and say why not. */
  const refresh = (c) => {
    const slack = c.installed + c.additional - (c.occupied + c.reserved + c.available + c.closed);
    plus.disabled = slack <= 0 && c.occupied <= 0;
    minus.disabled = c.available <= 0;
    why.textContent = plus.disabled
      ? "Aucune place occupée à libérer : pour ouvrir une place de plus, changez les places installées ou fermées dans « Autres compteurs »."
      : minus.disabled
        ? "Aucune place disponible à occuper."
        : "+1 libre : un enfant est parti (une place occupée devient disponible). −1 libre : un enfant est arrivé.";
  };
  const node = el(
    "div",
    { class: "compteur grand" },
    el("label", { for: id }, "Places disponibles"),
    el("div", { class: "commandes" }, minus, input, plus),
    why,
  );
  node.refresh = refresh;
  return node;
}

/** Who made a declaration, in words: the service's principal ids are not for reading. */
function declaredBy(who) {
  if (!who) return "";
  if (/^structure-/.test(who)) return " par l'établissement";
  if (/^carer-/.test(who)) return " par l'assistant familial";
  const authority = /^(?:department|authority_admin)-([0-9A-Z]{2,3})$/.exec(who);
  if (authority) return ` par ${authorityName(authority[1])}`;
  if (/^(operator|national)/.test(who) || /^[0-9a-f-]{20,}$/.test(who)) return "";
  return ` par ${who}`;
}

function valueOf(root_, name) {
  const input = root_.querySelector(`[data-compteur="${name}"] input.valeur`);
  return input ? Number(input.value) : undefined;
}

/** A 422 in plain French: name each field the way the form names it. */
function explain422(problem) {
  const detail = problem.detail || "";
  const english = /Input should|Field required|valid/i.test(detail);
  if (!english) {
    return detail.replace(/^([a-z_]+):\s*/, (_, f) => `${COMPTEURS[f] || f} : `);
  }
  return (problem.errors || [])
    .map((e) => {
      let message = e.message;
      const ge = /greater than or equal to (\d+)/.exec(message);
      const le = /less than or equal to (\d+)/.exec(message);
      if (ge) message = `doit être au moins ${ge[1]}`;
      else if (le) message = `doit être au plus ${le[1]}`;
      else if (/valid integer/.test(message)) message = "doit être un nombre entier";
      return `${COMPTEURS[e.field] || e.field} : ${message}`;
    })
    .join(" ; ");
}

function explainSendError(error, startedFrom) {
  if (!(error instanceof ApiError)) return explain(error);
  if (error.network) {
    return "La connexion a été perdue : la déclaration n'est peut-être pas partie. Renvoyez-la : elle ne sera jamais enregistrée deux fois.";
  }
  if (error.status === 409) {
    const now = error.problem.current_version;
    return (
      `Conflit de version : une autre déclaration a été enregistrée entre-temps` +
      (now !== undefined ? ` (version actuelle : ${now} ; votre formulaire partait de la version ${startedFrom})` : "") +
      ". Vos chiffres n'ont pas été enregistrés. Rechargez les chiffres actuels, vérifiez-les, puis déclarez à nouveau."
    );
  }
  if (error.status === 422) {
    const why = explain422(error.problem).replace(/[.\s]+$/, "");
    return `Déclaration refusée, rien n'a été enregistré : ${why}. Corrigez puis renvoyez.`;
  }
  if (error.status === 403) return "Cette déclaration n'est pas permise à votre compte (unité d'un autre établissement ?).";
  return explain(error);
}

function lastDeclaration(snapshot) {
  if (!snapshot || !snapshot.version) return el("p", { class: "derniere" }, "Aucune déclaration pour cette échéance : ce sera la première.");
  const stale = fmt.ageDays(snapshot.declared_at) > PAGE.stale_after_days;
  return el(
    "p",
    { class: "derniere" },
    "Dernière déclaration ",
    el("time", { datetime: snapshot.declared_at }, `${fmt.age(snapshot.declared_at)} (${fmt.dateTime(snapshot.declared_at)})`),
    declaredBy(snapshot.declared_by),
    // The version (what a 409 compares) for whoever reads it aloud or compares with the API.
    el("span", { class: "visuellement-cache" }, `, version ${snapshot.version}`),
    stale ? el("span", { class: "fr-badge fr-badge--sm fr-badge--error badge alerte" }, `périmée (plus de ${PAGE.stale_after_days} j)`) : null,
  );
}

// --- establishment -------------------------------------------------------------------------

function snapshotFor(unit, temporality) {
  if (temporality === "current") return unit.capacity;
  return (unit.forecasts || []).find((s) => s.temporality === temporality) || null;
}

function startingCounts(unit, temporality) {
  const own = snapshotFor(unit, temporality);
  const base = own || unit.capacity;
  if (base) return { ...base, version: own ? own.version : 0 };
  return { installed: unit.installed, occupied: 0, reserved: 0, closed: 0, available: 0, additional: 0, available_gender: "any", version: 0 };
}

function unitCard(unit) {
  const card = el("section", { class: "carte-unite", id: `unite-${unit.id}`, "aria-labelledby": `titre-${unit.id}` });
  const st = { temporality: "current", key: null, version: 0 };

  const result = el("div", { class: "resultat", role: "status", "aria-live": "polite" });
  const check = el("p", { class: "controle", "aria-live": "polite" });
  const lastBox = el("div");

  const send = el(
    "button",
    { type: "submit", class: "fr-btn bouton principal large", "aria-describedby": `controle-${unit.id}` },
    "Envoyer la déclaration",
  );
  check.id = `controle-${unit.id}`;
  const readCounts = () => {
    const c = Object.fromEntries(["available", ...OTHER_COUNTS].map((n) => [n, valueOf(card, n)]));
    c.setOccupied = (v) => {
      card.querySelector(`[data-compteur="occupied"] input.valeur`).value = String(v);
    };
    return c;
  };
  const update = () => {
    st.key = null; // the values changed: a new declaration, a new key
    refreshChecks();
  };
  const refreshChecks = () => {
    const c = readCounts();
    const used = c.occupied + c.reserved + c.available + c.closed;
    const ceiling = c.installed + c.additional;
    check.textContent = `Occupées + réservées + disponibles + fermées = ${used} pour ${ceiling} places (installées + supplémentaires).`;
    check.classList.toggle("alerte", used > ceiling);
    // The page knows the server would refuse: "Envoyer" says so instead of sending.
    send.disabled = used > ceiling;
    if (used > ceiling) {
      check.textContent += ` Envoi impossible : ce total dépasse la capacité de ${used - ceiling}. Baissez les places occupées, réservées ou fermées, ou augmentez les places installées.`;
    }
    counters.firstElementChild?.refresh?.(c);
  };

  const counters = el("div", { class: "compteurs" });
  const others = el("div", { class: "compteurs secondaires" });
  const gender = el(
    "select",
    { id: `genre-${unit.id}` },
    el("option", { value: "any" }, "Filles et garçons"),
    el("option", { value: "F" }, "Filles seulement"),
    el("option", { value: "M" }, "Garçons seulement"),
  );
  gender.addEventListener("change", update);

  const load = () => {
    const counts = startingCounts(unit, st.temporality);
    st.version = counts.version;
    const big = freeCounter(`dispo-${unit.id}`, counts.available, { onChange: update, counts: readCounts });
    big.dataset.compteur = "available";
    counters.replaceChildren(big);
    others.replaceChildren(
      ...OTHER_COUNTS.map((name) => {
        const s = stepper(`${name}-${unit.id}`, COMPTEURS[name], counts[name], { onChange: update });
        s.dataset.compteur = name;
        return s;
      }),
    );
    gender.value = counts.available_gender || "any";
    lastBox.replaceChildren(lastDeclaration(snapshotFor(unit, st.temporality)));
    update();
  };

  const tabs = el(
    "fieldset",
    { class: "echeances" },
    el("legend", {}, "Échéance"),
    TEMPORALITES.map(([code, label]) => {
      const input = el("input", { type: "radio", name: `echeance-${unit.id}`, value: code, checked: code === "current" });
      input.addEventListener("change", () => {
        st.temporality = code;
        result.replaceChildren();
        load();
      });
      return el("label", { class: "onglet" }, input, ` ${label}`);
    }),
  );

  const form = el(
    "form",
    { class: "declaration", novalidate: true },
    tabs,
    lastBox,
    counters,
    el(
      "details",
      { class: "autres" },
      el("summary", {}, "Autres compteurs (occupées, réservées, fermées, installées…)"),
      others,
      el("div", { class: "fr-input-group champ" }, el("label", { for: `genre-${unit.id}` }, COMPTEURS.available_gender), gender),
    ),
    check,
    send,
    result,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { temporality: st.temporality, available_gender: gender.value };
    for (const name of ["available", ...OTHER_COUNTS]) body[name] = valueOf(card, name);
    if (!st.key) st.key = newKey();
    send.disabled = true;
    send.textContent = "Envoi…";
    result.replaceChildren();
    try {
      const snapshot = await api(`/v1/units/${unit.id}/capacity`, {
        method: "PUT",
        body,
        headers: { "Idempotency-Key": st.key, "If-Match": `"${st.version}"` },
      });
      if (st.temporality === "current") unit.capacity = snapshot;
      else {
        unit.forecasts = (unit.forecasts || []).filter((s) => s.temporality !== st.temporality);
        unit.forecasts.push(snapshot);
      }
      load();
      result.replaceChildren(
        el(
          "p",
          { class: "fr-alert fr-alert--success fr-alert--sm succes", tabindex: "-1" },
          el("span", { "aria-hidden": "true" }, "✓ "),
          "Déclaration enregistrée : ",
          el("strong", { class: "version" }, `version ${snapshot.version}`),
          `, ${fmt.plural(snapshot.available, "place disponible", "places disponibles")} (${TEMPORALITES.find(([c]) => c === st.temporality)[1].toLowerCase()}), à ${fmt.time(snapshot.declared_at)}.`,
        ),
      );
      // Focus goes to the outcome, not lost to the page (the button was disabled meanwhile).
      result.firstElementChild.focus();
    } catch (error) {
      if (!(error instanceof ApiError && error.network)) st.key = null; // answered: next send is new
      const actions = [];
      if (error instanceof ApiError && error.status === 409) {
        actions.push(el("button", { type: "button", class: "fr-btn fr-btn--secondary bouton secondaire", onclick: () => reload(unit.id) }, "Recharger les chiffres actuels"));
      }
      result.replaceChildren(el("div", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert", tabindex: "-1" }, el("p", {}, explainSendError(error, st.version)), ...actions));
      result.firstElementChild.focus();
    } finally {
      send.textContent = "Envoyer la déclaration";
      refreshChecks();
    }
  });

  const ages = `${unit.age_min}–${unit.age_max} ans`;
  const modes = unit.care_modes.map((m) => MODES[m] || m).join(", ");
  const profils = profilsGradues(unit);
  card.append(
    el("h2", { id: `titre-${unit.id}` }, unit.name),
    el("p", { class: "aide" }, `${ages} · ${unit.sexes.join("/")} · ${modes}${profils ? ` · ${profils}` : ""}`),
    form,
  );
  load();
  return card;
}

async function reload(unitId) {
  await start();
  const card = document.getElementById(`unite-${unitId}`);
  if (card) {
    card.querySelector(".resultat").replaceChildren(el("p", { class: "fr-alert fr-alert--info fr-alert--sm note" }, "Chiffres rechargés : vérifiez-les puis déclarez à nouveau."));
    card.querySelector("input.valeur")?.focus();
  }
}

function renderStructure(data) {
  const s = data.structure;
  const cards = s.units.map(unitCard);
  root.replaceChildren(
    el(
      "div",
      { class: "entete-structure" },
      el("p", { class: "nom-structure" }, el("strong", {}, s.name)),
      el("p", { class: "aide" }, `FINESS ${s.finess} · ${data.commune_name || s.commune} (${s.department})`),
    ),
    ...(cards.length ? cards : [el("p", { class: "vide" }, "Cet établissement n'a aucune unité enregistrée.")]),
  );
}

// --- carer ---------------------------------------------------------------------------------
// Two parts, as the law splits them (#15). The agrément is the issuing authority's decision
// (CASF L421-3: issued for five years; L421-5: capacity, derogation above three children;
// L421-6: suspension, withdrawal): shown read-only, from GET /v1/agrements/{id}, never in a
// form. What is the carer's own — free places within the agrément, leave, preferences within
// the agrément — is one form, sent to PUT /v1/foster-carers/{id}/availability.

const PAGE_AUTHORITIES = PAGE.authorities || {};

function authorityName(code) {
  return PAGE_AUTHORITIES[code] ? `${PAGE_AUTHORITIES[code]} (${code})` : code;
}

function capacityText(agrement) {
  const base = fmt.plural(agrement.capacity, "enfant", "enfants");
  const d = agrement.derogation;
  if (!d) return base;
  return `${base} — dérogation pour ${fmt.plural(d.children, "enfant", "enfants")} (${MOTIFS_DEROGATION[d.reason] || d.reason}${d.until ? `, jusqu'au ${fmt.day(d.until)}` : ""})`;
}

function employerText(employer) {
  if (!employer) return "—";
  if (employer.kind === "structure") return `${employer.name} (FINESS ${employer.finess})`;
  return authorityName(employer.authority);
}

/** The decision a carer reads when their agrément is not valid today, or null. */
function decisionText(agrement) {
  const issuer = authorityName(agrement.issuing_authority);
  switch (agrement.state) {
    case "suspended": {
      const s = agrement.suspension || {};
      return (
        `Votre agrément est suspendu depuis le ${fmt.day(s.from)}` +
        (s.until ? ` jusqu'au ${fmt.day(s.until)}` : "") +
        ` par ${issuer}` +
        (s.reason ? ` (motif : ${MOTIFS_SUSPENSION[s.reason] || s.reason})` : "") +
        ". Vous ne pouvez pas déclarer de place pendant la suspension ; adressez-vous à son service d'agrément."
      );
    }
    case "withdrawn": {
      const w = agrement.withdrawal || {};
      return (
        `Votre agrément a été retiré le ${fmt.day(w.on)} par ${issuer}` +
        (w.reason ? ` (motif : ${MOTIFS_RETRAIT[w.reason] || w.reason})` : "") +
        ". Vous ne pouvez plus déclarer de place."
      );
    }
    case "expired":
      return (
        `Votre agrément a expiré le ${fmt.day(agrement.valid_until)}. Vous ne pouvez pas déclarer de place ; ` +
        (agrement.renewal_requested_on
          ? `votre demande de renouvellement du ${fmt.day(agrement.renewal_requested_on)} est en cours d'instruction par ${issuer}.`
          : `demandez son renouvellement au service d'agrément de ${issuer}.`)
      );
    case "not_yet_valid":
      return `Votre agrément prend effet le ${fmt.day(agrement.issued_on)} : vous pourrez déclarer des places à partir de cette date.`;
    default:
      return null;
  }
}

/** The agrément, read-only: a description list, no input (the carer cannot edit it). */
function agrementCard(agrement, byCarer) {
  const rows = [
    ["Numéro", agrement.number],
    ["Délivré par", authorityName(agrement.issuing_authority)],
    ["Délivré le", fmt.day(agrement.issued_on)],
    ["Valable jusqu'au", fmt.day(agrement.valid_until)],
    ["Capacité", capacityText(agrement)],
    ["Âges", `${agrement.age_min}–${agrement.age_max} ans`],
    ["Modes d'accueil", agrement.care_modes.map((m) => MODES[m] || m).join(", ")],
    [
      "État",
      el("span", { class: `badge etat-${agrement.state}`, dataset: { etat: agrement.state } }, ETATS_AGREMENT[agrement.state] || agrement.state),
    ],
  ];
  if (agrement.suspension) {
    const s = agrement.suspension;
    rows.push([
      "Suspension",
      `du ${fmt.day(s.from)}${s.until ? ` au ${fmt.day(s.until)}` : " (sans date de fin)"} — ${MOTIFS_SUSPENSION[s.reason] || s.reason}`,
    ]);
  }
  if (agrement.withdrawal) {
    const w = agrement.withdrawal;
    rows.push(["Retrait", `le ${fmt.day(w.on)} — ${MOTIFS_RETRAIT[w.reason] || w.reason}`]);
  }
  if (agrement.renewal_requested_on) {
    rows.push(["Renouvellement", `demandé le ${fmt.day(agrement.renewal_requested_on)}`]);
  }
  rows.push(["Employeur", employerText(agrement.employer)]);
  const decision = decisionText(agrement);
  return el(
    "section",
    { class: "carte-unite", id: "agrement", "aria-labelledby": "titre-agrement" },
    el("h2", { id: "titre-agrement" }, byCarer ? "Mon agrément" : "Agrément"),
    decision ? el("div", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "status", id: "decision-agrement" }, el("p", {}, decision)) : null,
    el("dl", { class: "fiche" }, rows.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value)))),
    el(
      "p",
      { class: "aide" },
      `L'agrément est décidé par ${authorityName(agrement.issuing_authority)} (son service d'agrément, PMI) : il n'est pas modifiable ici. Pour une erreur ou un changement, adressez-vous à ce service.`,
    ),
  );
}

/** The agrément of `carerId`, or null with the reason when it cannot be read (shown). */
async function loadAgrement(carerId) {
  try {
    return { agrement: await api(`/v1/agrements/${carerId}`) };
  } catch (error) {
    return { agrement: null, error };
  }
}

/** The limits of the carer's own part: the agrément's, or (agrément unreadable) the carer's
 * record's. */
function limitsOf(carer, agrement) {
  return {
    capacity: agrement ? agrement.capacity : carer.agrement_capacity,
    age_min: agrement ? agrement.age_min : carer.age_min,
    age_max: agrement ? agrement.age_max : carer.age_max,
    care_modes: agrement ? agrement.care_modes : carer.care_modes,
  };
}

function preferencesFieldset(carer, limits, onChange) {
  const prefs = carer.preferences || {};
  const ageMin = el("input", {
    id: "af-pref-age-min",
    type: "number",
    inputmode: "numeric",
    min: limits.age_min,
    max: limits.age_max,
    value: prefs.age_min ?? limits.age_min,
  });
  const ageMax = el("input", {
    id: "af-pref-age-max",
    type: "number",
    inputmode: "numeric",
    min: limits.age_min,
    max: limits.age_max,
    value: prefs.age_max ?? limits.age_max,
  });
  const chosen = prefs.care_modes || limits.care_modes;
  const modes = limits.care_modes.map((m) =>
    el("label", { class: "case" }, el("input", { type: "checkbox", name: "af-pref-mode", value: m, checked: chosen.includes(m) }), ` ${MODES[m] || m}`),
  );
  for (const input of [ageMin, ageMax]) input.addEventListener("input", onChange);
  const box = el(
    "fieldset",
    { class: "preferences", id: "af-preferences" },
    el("legend", {}, "Mes préférences (dans les limites de l'agrément)"),
    el(
      "div",
      { class: "ligne-champs" },
      el("div", { class: "fr-input-group champ" }, el("label", { for: "af-pref-age-min" }, "Âge minimum"), ageMin, el("p", { class: "erreur-champ", id: "erreur-preferences.age_min", hidden: true })),
      el("div", { class: "fr-input-group champ" }, el("label", { for: "af-pref-age-max" }, "Âge maximum"), ageMax, el("p", { class: "erreur-champ", id: "erreur-preferences.age_max", hidden: true })),
    ),
    el("div", { class: "cases", role: "group", "aria-label": "Modes d'accueil souhaités" }, modes),
    el("p", { class: "erreur-champ", id: "erreur-preferences.care_modes", hidden: true }),
  );
  box.addEventListener("change", onChange);
  box.read = () => ({
    age_min: Number(ageMin.value),
    age_max: Number(ageMax.value),
    care_modes: [...box.querySelectorAll("input[name=af-pref-mode]:checked")].map((i) => i.value),
  });
  return box;
}

/** Show each field's error (problem+json ``errors[].field``) next to its field. */
function showFieldErrors(form, problem) {
  for (const node of form.querySelectorAll(".erreur-champ")) {
    node.hidden = true;
    node.textContent = "";
  }
  let shown = 0;
  for (const e of problem.errors || []) {
    // The form still sends the deprecated years and care modes; the API names the fields of
    // the needs vocabulary (ages in months, timings/publics/formulas): shown at the old ones.
    const at = ERROR_AT[e.field] || e.field;
    const node = form.querySelector(`[id="erreur-${CSS.escape(at)}"]`);
    if (!node) continue;
    node.textContent = `${COMPTEURS[e.field] || e.field} : ${e.message}`;
    node.hidden = false;
    shown += 1;
  }
  return shown;
}

function renderCarer(data, agrementResult) {
  const carer = data.carer;
  const byCarer = session()?.role === "carer";
  const { agrement, error: agrementError } = agrementResult;
  const parts = [];
  if (agrement) parts.push(agrementCard(agrement, byCarer));
  else {
    parts.push(
      el(
        "section",
        { class: "carte-unite", id: "agrement", "aria-labelledby": "titre-agrement" },
        el("h2", { id: "titre-agrement" }, byCarer ? "Mon agrément" : "Agrément"),
        el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "status" }, `L'agrément n'a pas pu être lu : ${explain(agrementError)}`),
        el("p", { class: "aide" }, `Agrément : ${fmt.plural(carer.agrement_capacity, "place", "places")}, ${carer.age_min}–${carer.age_max} ans · ${carer.care_modes.map((m) => MODES[m] || m).join(", ")} · ${data.commune_name || carer.commune}`),
      ),
    );
  }
  // Not valid today (suspended, withdrawn, expired, not yet in force): no place can be
  // declared (the database refuses it too, trigger of migration 0012); the decision is shown
  // above, and nothing below offers to lift it.
  const state = agrement ? agrement.state : carer.agrement_state;
  if (state && state !== "valid") {
    if (!agrement) {
      parts.push(el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "status" }, `Votre agrément est ${(ETATS_AGREMENT[state] || state).toLowerCase()} : vous ne pouvez pas déclarer de place.`));
    }
    root.replaceChildren(...parts);
    return;
  }
  const limits = limitsOf(carer, agrement);
  const st = { key: null, version: carer.version };
  const result = el("div", { class: "resultat", role: "status", "aria-live": "polite" });
  const update = () => {
    st.key = null;
  };
  const places = stepper("af-places", "Places disponibles", carer.available_places, { big: true, max: limits.capacity, onChange: update });
  places.dataset.compteur = "available_places";
  places.append(el("p", { class: "erreur-champ", id: "erreur-available_places", hidden: true }));
  const statuses = Object.entries(STATUTS_AF).map(([code, label]) => [code, code === "active" ? "Disponible pour accueillir" : label]);
  const leaveFrom = el("input", { id: "af-depuis", type: "date", value: carer.leave_from || "" });
  const until = el("input", { id: "af-jusqu", type: "date", value: carer.status_until || "" });
  const leaveBox = el(
    "div",
    { class: "ligne-champs", id: "af-conge" },
    el(
      "div",
      { class: "fr-input-group champ" },
      el("label", { for: "af-depuis" }, "Congé à partir du"),
      leaveFrom,
      el("p", { class: "aide" }, "Vide : dès maintenant."),
      el("p", { class: "erreur-champ", id: "erreur-leave_from", hidden: true }),
    ),
    el("div", { class: "fr-input-group champ" }, el("label", { for: "af-jusqu" }, "Jusqu'au"), until, el("p", { class: "erreur-champ", id: "erreur-until", hidden: true })),
  );
  const radios = el(
    "fieldset",
    { class: "echeances" },
    el("legend", {}, "Statut"),
    statuses.map(([code, label]) => {
      const input = el("input", { type: "radio", name: "af-statut", value: code, checked: carer.status === code });
      input.addEventListener("change", () => {
        leaveBox.hidden = code !== "leave";
        update();
      });
      return el("label", { class: "onglet" }, input, ` ${label}`);
    }),
    el("p", { class: "erreur-champ", id: "erreur-status", hidden: true }),
  );
  leaveBox.hidden = carer.status !== "leave";
  leaveFrom.addEventListener("input", update);
  until.addEventListener("input", update);
  const preferences = preferencesFieldset(carer, limits, update);
  const send = el("button", { type: "submit", class: "fr-btn bouton principal large" }, "Envoyer la déclaration");
  const lastBox = el("div", {}, lastDeclaration(carer));
  const form = el("form", { class: "declaration formulaire", novalidate: true }, lastBox, places, radios, leaveBox, preferences, send, result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = form.querySelector("input[name=af-statut]:checked")?.value || "active";
    const body = {
      available_places: valueOf(form, "available_places"),
      status,
      preferences: preferences.read(),
    };
    if (status === "leave") {
      if (leaveFrom.value) body.leave_from = leaveFrom.value;
      if (until.value) body.until = until.value;
    }
    if (!st.key) st.key = newKey();
    send.disabled = true;
    result.replaceChildren();
    showFieldErrors(form, {});
    try {
      const out = await api(`/v1/foster-carers/${carer.id}/availability`, {
        method: "PUT",
        body,
        headers: { "Idempotency-Key": st.key, "If-Match": `"${st.version}"` },
      });
      st.version = out.version;
      st.key = null;
      Object.assign(carer, out);
      lastBox.replaceChildren(lastDeclaration(out));
      result.replaceChildren(
        el("p", { class: "fr-alert fr-alert--success fr-alert--sm succes" }, el("span", { "aria-hidden": "true" }, "✓ "), "Déclaration enregistrée : ", el("strong", { class: "version" }, `version ${out.version}`), `, ${fmt.plural(out.available_places, "place disponible", "places disponibles")}.`),
      );
    } catch (error) {
      if (!(error instanceof ApiError && error.network)) st.key = null;
      if (error instanceof ApiError && error.status === 422) showFieldErrors(form, error.problem);
      const actions = error instanceof ApiError && error.status === 409
        ? [el("button", { type: "button", class: "fr-btn fr-btn--secondary bouton secondaire", onclick: () => start() }, "Recharger les chiffres actuels")]
        : [];
      result.replaceChildren(el("div", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert" }, el("p", {}, explainSendError(error, st.version)), ...actions));
    } finally {
      send.disabled = false;
    }
  });
  const manages = !byCarer && may(session(), "agrement.manage");
  parts.push(
    el(
      "section",
      { class: "carte-unite", id: "disponibilites", "aria-labelledby": "titre-af" },
      el("h2", { id: "titre-af" }, byCarer ? "Mes disponibilités d'assistant familial" : "Disponibilités de l'assistant familial"),
      el("p", { class: "aide" }, `${data.commune_name || carer.commune} · au plus ${fmt.plural(limits.capacity, "place", "places")} (capacité de l'agrément)`),
      manages
        ? el("p", { class: "fr-alert fr-alert--info fr-alert--sm note" }, "Les décisions sur l'agrément (suspension, retrait, renouvellement) se prennent depuis le tableau de bord de l'autorité, panneau « Agréments ».")
        : null,
      form,
    ),
  );
  root.replaceChildren(...parts);
}

// --- orientations --------------------------------------------------------------------------
// The holds a department placed on my units (or on me, for a carer), soonest deadline first:
// the places are kept for the child until the deadline; the department records the
// admission, and this side may refuse, with a reason the department will read.

function countdownText(expiresAt) {
  const left = new Date(expiresAt).getTime() - Date.now();
  return left > 0 ? `reste ${fmt.countdown(left)}` : "échue — libération automatique en cours";
}

let countdownTimer = null;
function tickCountdowns() {
  for (const node of root.querySelectorAll("[data-expire]")) {
    node.textContent = countdownText(node.dataset.expire);
    node.classList.toggle("urgent", new Date(node.dataset.expire).getTime() - Date.now() < 3600_000);
  }
}

function holdItem(hold, targetName) {
  const result = el("div", { class: "resultat", role: "status", "aria-live": "polite" });
  const reason = el("textarea", { id: `motif-${hold.id}`, maxlength: 500, rows: 2, required: true });
  const confirm = el("button", { type: "submit", class: "fr-btn bouton principal" }, "Confirmer le refus");
  const form = el(
    "form",
    { class: "refus", hidden: true, novalidate: true },
    el("label", { for: `motif-${hold.id}` }, "Motif du refus (lu par le département)"),
    reason,
    confirm,
  );
  const open = el("button", { type: "button", class: "fr-btn fr-btn--secondary bouton secondaire", "aria-expanded": "false" }, "Refuser…");
  open.addEventListener("click", () => {
    form.hidden = !form.hidden;
    open.setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) reason.focus();
  });
  const item = el(
    "li",
    { id: `orientation-${hold.id}`, class: "orientation" },
    el(
      "p",
      {},
      el("strong", {}, targetName),
      ` · ${fmt.plural(hold.places, "place gardée", "places gardées")} jusqu'au ${fmt.dateTime(hold.expires_at)} · `,
      el("span", { class: "decompte-reservation", role: "timer", dataset: { expire: hold.expires_at } }, countdownText(hold.expires_at)),
    ),
    open,
    form,
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!reason.value.trim()) {
      result.replaceChildren(el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert" }, "Indiquez le motif du refus : le département en a besoin pour orienter l'enfant ailleurs."));
      reason.focus();
      return;
    }
    confirm.disabled = true;
    try {
      await api(`/v1/holds/${hold.id}/refuse`, { method: "POST", body: { reason: reason.value.trim() } });
      // The refusal changed the unit's counts (and version): reload the whole page's figures.
      await start(`Orientation refusée (${targetName}) : ${fmt.plural(hold.places, "la place redevient disponible", "les places redeviennent disponibles")}.`);
    } catch (error) {
      const gone = error instanceof ApiError && error.status === 409;
      result.replaceChildren(
        el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert" }, gone ? "Cette orientation n'est plus en attente (admise, libérée ou échue entre-temps)." : explain(error)),
      );
      confirm.disabled = false;
    }
  });
  return item;
}

async function renderHolds(names, notice) {
  const section = el(
    "section",
    { class: "carte-unite", id: "orientations", "aria-labelledby": "titre-orientations" },
    el("h2", { id: "titre-orientations" }, "Orientations en attente"),
  );
  if (notice) {
    section.append(el("p", { class: "fr-alert fr-alert--success fr-alert--sm succes", role: "status", tabindex: "-1" }, el("span", { "aria-hidden": "true" }, "✓ "), notice));
  }
  let page;
  try {
    page = await api("/v1/holds?status=held");
  } catch (error) {
    section.append(el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert" }, explain(error)));
    root.prepend(section);
    return;
  }
  // Places kept for a child come first; none kept, the section goes after the counters, so
  // that the first counter is on the first screen of a phone.
  if (page.items.length || notice) root.prepend(section);
  else root.append(section);
  section.querySelector(".succes")?.focus();
  if (!page.items.length) {
    section.append(el("p", { class: "vide" }, "Aucune place n'est gardée pour un enfant en ce moment."));
    return;
  }
  section.append(
    el("p", { class: "aide" }, "Des places sont gardées pour un enfant orienté par le département ; il enregistre l'admission. Si vous ne pouvez pas l'accueillir, refusez en donnant le motif : les places redeviennent disponibles."),
    el("ul", { class: "liste-orientations" }, page.items.map((h) => holdItem(h, names[h.target.id] || "Accueil"))),
  );
  clearInterval(countdownTimer);
  countdownTimer = setInterval(tickCountdowns, 1000);
}

// --- start ---------------------------------------------------------------------------------

async function start(notice) {
  hideAlert(alertBox);
  const query = new URLSearchParams(scope).toString();
  try {
    const data = await api(`/ui/api/moi${query ? `?${query}` : ""}`);
    if (data.kind === "structure") renderStructure(data);
    else renderCarer(data, await loadAgrement(data.carer.id));
    // Only the establishment or the carer answers an orientation (not whoever declares
    // for them).
    const role = session()?.role;
    if (role === "structure" || role === "carer") {
      const names = data.kind === "structure"
        ? Object.fromEntries(data.structure.units.map((u) => [u.id, u.name]))
        : { [data.carer.id]: "Mon accueil" };
      await renderHolds(names, notice);
    }
    restoreDraft(); // what was typed before the session expired, if it did
  } catch (error) {
    root.replaceChildren();
    showAlert(alertBox, explain(error));
  }
}

async function main() {
  const current = await requireSession(["structure", "carer", "department", "operator"], alertBox);
  if (!current) return;
  const params = new URLSearchParams(location.search);
  if (params.get("finess")) scope.finess = params.get("finess");
  if (params.get("carer")) scope.carer = params.get("carer");
  if ((current.role === "operator" || AUTHORITY_ROLES.includes(current.role)) && !scope.finess && !scope.carer) {
    const form = $("form-admin");
    form.hidden = false;
    if (AUTHORITY_ROLES.includes(current.role)) {
      // A department declares for its carers (an establishment declares its own units).
      $("champ-finess").hidden = true;
      $("aide-admin").textContent = "Département : indiquez l'identifiant de l'assistant familial pour qui déclarer.";
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      scope = {};
      if ($("a-finess").value.trim()) scope.finess = $("a-finess").value.trim();
      else if ($("a-carer").value.trim()) scope.carer = $("a-carer").value.trim();
      start();
    });
    return;
  }
  start();
}

main();
