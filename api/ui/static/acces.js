// "Qui a consulté les données de nos enfants": the reads of an authority's data by readers
// from outside it (GET /v1/audit?readers=outside), newest first, a page at a time. Every
// line comes from the API with the session's token; the API decides who may read it.

import { ROLES, api, el, explain, fmt, ownDashboard, pageData, requireSession, showAlert } from "./common.js";

const READERS = ["department"]; // who may open this page (its administrator too): one line
const PAGE = pageData();
const CODE = PAGE.code;
const SIZE = 100;
const $ = (id) => document.getElementById(id);
const alertBox = $("alerte-page");

const ACTIONS = {
  "request.read": "a lu une demande",
  "request.list": "a listé des demandes",
  "request.history": "a lu l'historique d'une demande",
  "request.create": "a créé une demande",
  "request.cancel": "a annulé une demande",
  "hold.list": "a listé des réservations",
  "hold.read": "a lu une réservation",
  "hold.create": "a réservé une place",
  "hold.admit": "a admis un enfant",
  "hold.release": "a libéré une place réservée",
  "hold.refuse": "a refusé une orientation",
  "hold.expire": "réservation échue",
  "hold.exit": "a déclaré une sortie",
  "request.unexecuted": "a lu les mesures non exécutées",
  "search.run": "a lancé une recherche",
  "carer.list": "a listé les assistants familiaux",
  "feed.subscribe": "s'est abonné au flux",
  "audit.read": "a lu le journal d'audit",
};

let offset = 0;

function row(entry) {
  return el(
    "tr",
    {},
    el("td", {}, fmt.dateTime(entry.occurred_at)),
    el("td", {}, entry.actor),
    el("td", {}, ROLES[entry.role] || entry.role),
    el("td", {}, ACTIONS[entry.action] || entry.action),
    el("td", {}, `${entry.object_type} ${entry.object_id}`),
  );
}

async function more() {
  const body = $("table-acces").tBodies[0];
  const page = await api(
    `/v1/audit?authority=${encodeURIComponent(CODE)}&readers=outside&limit=${SIZE}&offset=${offset}`,
  );
  if (offset === 0) body.replaceChildren();
  body.append(...page.items.map(row));
  offset += page.items.length;
  if (!offset) body.append(el("tr", {}, el("td", { colspan: "5", class: "vide" }, "Aucune consultation extérieure.")));
  $("acces-total").textContent = `(${fmt.plural(page.total, "consultation", "consultations")})`;
  $("plus").hidden = offset >= page.total;
}

async function main() {
  const current = await requireSession(READERS, alertBox);
  if (!current) return;
  if (current.authority !== CODE) {
    showAlert(
      alertBox,
      `Cette page est celle de ${PAGE.name} (${CODE}).`,
      el("a", { href: ownDashboard(current) }, "Aller à mon tableau de bord"),
    );
    return;
  }
  $("plus").addEventListener("click", () => more().catch((e) => showAlert(alertBox, explain(e))));
  try {
    await more();
  } catch (error) {
    showAlert(alertBox, `Chargement impossible. ${explain(error)}`);
  }
}

main();
