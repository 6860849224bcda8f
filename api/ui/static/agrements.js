// The authority's agréments on its dashboard (#15): the agréments it issued — expiring within
// six months first, then suspended ones, then derogations — with the decisions the law gives
// its agrément service (CASF L421-6: suspend in an emergency, reinstate, withdraw; record a
// renewal request, L421-3), and the placements to review (children placed with a carer whose
// agrément is no longer valid today). Every decision carries a required coded reason where
// the law asks for one, If-Match (the version the list showed: nobody's decision is
// overwritten blindly) and an Idempotency-Key (a retry after a lost answer never decides
// twice); the API decides who may, the page only hides what the session cannot do.

import {
  ApiError,
  ETATS_AGREMENT,
  MOTIFS_HISTORIQUES,
  MOTIFS_RETRAIT,
  MOTIFS_SUSPENSION,
  announce,
  api,
  coalesce,
  el,
  explain,
  fmt,
  may,
  newKey,
  setUpTabs,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const LIMIT = 200;

/** The three lists, in the order the issue asks: expiring first (6 months ≈ 183 days). */
const LISTS = {
  expiring: {
    query: "expiring_within_days=183",
    caption: "Agréments qui expirent dans les 6 mois, le plus proche d'abord",
    empty: "Aucun agrément n'expire dans les 6 mois.",
  },
  suspended: {
    query: "state=suspended",
    caption: "Agréments suspendus, par date de fin de validité",
    empty: "Aucun agrément suspendu.",
  },
  derogation: {
    query: "derogation=true",
    caption: "Agréments avec dérogation au-delà de trois enfants, par date de fin de validité",
    empty: "Aucun agrément avec dérogation.",
  },
};

const ACTIONS = {
  suspend: {
    label: "Suspendre…",
    title: "Suspendre l'agrément",
    confirm: "Suspendre",
    path: "suspend",
    done: "Agrément suspendu",
  },
  reinstate: {
    label: "Lever la suspension…",
    title: "Lever la suspension de l'agrément",
    confirm: "Lever la suspension",
    path: "reinstate",
    done: "Suspension levée",
  },
  withdraw: {
    label: "Retirer…",
    title: "Retirer l'agrément",
    confirm: "Retirer l'agrément",
    path: "withdraw",
    done: "Agrément retiré",
  },
  renewal: {
    label: "Renouvellement demandé…",
    title: "Enregistrer une demande de renouvellement",
    confirm: "Enregistrer la demande",
    path: "renewal-request",
    done: "Demande de renouvellement enregistrée",
  },
};

const FIELD_LABELS = {
  from: "Suspendu à partir du",
  until: "Jusqu'au",
  reason: "Motif",
  on: "Retiré le",
  requested_on: "Demande reçue le",
};

function today() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** What may be decided on an agrément in its state (the API checks it again). */
function actionsFor(agrement) {
  switch (agrement.state) {
    case "withdrawn":
      return [];
    case "suspended":
      return ["reinstate", "withdraw", "renewal"];
    case "expired":
      return ["withdraw", "renewal"];
    default:
      return ["suspend", "withdraw", "renewal"];
  }
}

function reasonOptions(vocabulary) {
  return [
    el("option", { value: "" }, "— Choisir un motif —"),
    ...Object.entries(vocabulary)
      .filter(([code]) => !MOTIFS_HISTORIQUES.includes(code))
      .map(([code, label]) => el("option", { value: code }, label)),
  ];
}

/** The decision's dates and coded reason, in French ("du 01/05/2026 — Raison de santé"). */
function stateDetail(a) {
  if (a.suspension) {
    const s = a.suspension;
    return `du ${fmt.day(s.from)}${s.until ? ` au ${fmt.day(s.until)}` : ""} — ${MOTIFS_SUSPENSION[s.reason] || s.reason}`;
  }
  if (a.withdrawal) return `le ${fmt.day(a.withdrawal.on)} — ${MOTIFS_RETRAIT[a.withdrawal.reason] || a.withdrawal.reason}`;
  return "";
}

function stateText(a) {
  return [ETATS_AGREMENT[a.state] || a.state, stateDetail(a)].filter(Boolean).join(" ");
}

function daysUntil(day) {
  const [y, m, d] = day.split("-").map(Number);
  const end = Date.UTC(y, m - 1, d);
  const [ty, tm, td] = today().split("-").map(Number);
  return Math.round((end - Date.UTC(ty, tm - 1, td)) / 86_400_000);
}

/**
 * Set the panel up on the dashboard of `code` for the session `current`. Returns the live
 * feed's handler (`onEvent`) and `load`, or null when the session may not read carers.
 */
export function setUpAgrements({ code, current, communeName, announcer }) {
  const canRead = may(current, "carers.read");
  const canManage = may(current, "agrement.manage");
  const toReview = { items: [], references: new Map() };
  // The to-review list is the placement service's (children's data: permission placement),
  // whether the authority placed the child or employs the carer.
  const canReview = may(current, "placement");
  $("a-revoir").hidden = !canReview;
  $("lien-a-revoir").hidden = !canReview;
  const loadToReview = () => (canReview ? fetchToReview() : Promise.resolve());
  if (!canRead) {
    // No agrément list for this function; the placements to review all the same.
    const reviewSoon = coalesce(loadToReview, 400);
    return {
      load: loadToReview,
      onEvent: (message) => {
        if (message.type === "carer.agrement_updated" || message.type === "placement.to_review") reviewSoon();
      },
    };
  }
  $("agrements").hidden = false;
  $("lien-agrements").hidden = false;

  const st = { list: "expiring", pages: {}, open: null, notice: null };

  async function loadLists() {
    const entries = await Promise.all(
      Object.entries(LISTS).map(async ([name, list]) => [name, await api(`/v1/agrements?${list.query}&limit=${LIMIT}&offset=0`)]),
    );
    st.pages = Object.fromEntries(entries);
  }

  function render() {
    for (const name of Object.keys(LISTS)) {
      const page = st.pages[name];
      $(`compte-${name}`).textContent = page ? `(${fmt.n(page.total)})` : "";
    }
    const list = LISTS[st.list];
    const page = st.pages[st.list];
    $("legende-agrements").textContent = list.caption;
    const body = $("table-agrements").tBodies[0];
    if (!page) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "vide" }, "Chargement…")));
      return;
    }
    // The last decision taken here stays said (until the next one), before the list's size:
    // the live echo of that same decision must not wipe its confirmation.
    $("resume-agrements").replaceChildren(
      st.notice ? el("span", { class: "succes-ligne" }, el("span", { "aria-hidden": "true" }, "✓ "), st.notice, " ") : "",
      page.total > page.items.length
        ? `${fmt.n(page.items.length)} premiers sur ${fmt.n(page.total)}, par date de fin de validité.`
        : `${fmt.plural(page.total, "agrément", "agréments")}, par date de fin de validité.`,
    );
    if (!page.items.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "vide" }, list.empty)));
      return;
    }
    body.replaceChildren(...page.items.map(row));
  }

  function row(a) {
    const left = daysUntil(a.valid_until);
    const capacity = a.derogation
      ? `${a.capacity} (dérogation : ${a.derogation.children}${a.derogation.until ? ` jusqu'au ${fmt.day(a.derogation.until)}` : ""})`
      : String(a.capacity);
    const actions = canManage
      ? actionsFor(a).map((action) =>
          el(
            "button",
            {
              type: "button",
              class: `bouton petit${action === "suspend" || action === "withdraw" ? "" : " secondaire"}`,
              "aria-label": `${ACTIONS[action].label.replace("…", "")} : agrément ${a.number}`,
              dataset: { action },
              onclick: (event) => openAction(a, action, event.currentTarget),
            },
            ACTIONS[action].label,
          ),
        )
      : [];
    return el(
      "tr",
      { id: `agrement-${a.carer_id}`, dataset: { carer: a.carer_id, version: a.version } },
      el("th", { scope: "row" }, a.number),
      el("td", {}, communeName(a.commune)),
      el(
        "td",
        {},
        el("time", { datetime: a.valid_until }, fmt.day(a.valid_until)),
        left >= 0 && left <= 183 ? el("span", { class: `badge${left <= 30 ? " alerte" : ""}` }, `dans ${fmt.plural(left, "jour", "jours")}`) : null,
      ),
      el("td", {}, el("span", { class: `badge etat-${a.state}` }, ETATS_AGREMENT[a.state] || a.state), " ", stateDetail(a)),
      el("td", { class: "nombre" }, capacity),
      el("td", {}, a.renewal_requested_on ? `demandé le ${fmt.day(a.renewal_requested_on)}` : "—"),
      el("td", { class: "actions" }, actions.length ? actions : el("span", { class: "aide" }, "—")),
    );
  }

  // --- one decision at a time, in a form under the list ------------------------------------

  function field(id, label, input, hint) {
    return el(
      "div",
      { class: "fr-input-group champ", id: `champ-${id}` },
      el("label", { for: id }, label),
      input,
      hint ? el("p", { class: "aide", id: `${id}-aide` }, hint) : null,
      el("p", { class: "erreur-champ", id: `${id}-erreur`, hidden: true }),
    );
  }

  function openAction(agrement, action, opener) {
    const box = $("action-agrement");
    const spec = ACTIONS[action];
    const key = { value: null }; // kept while a send is in doubt (network), new once answered
    const inputs = {};
    const fields = [];
    if (action === "suspend") {
      inputs.from = el("input", { id: "ag-from", type: "date", value: today(), required: true });
      inputs.until = el("input", { id: "ag-until", type: "date", "aria-describedby": "ag-until-aide" });
      inputs.reason = el("select", { id: "ag-reason", required: true, "aria-required": "true" }, reasonOptions(MOTIFS_SUSPENSION));
      fields.push(
        field("ag-reason", "Motif (obligatoire)", inputs.reason),
        el(
          "div",
          { class: "ligne-champs" },
          field("ag-from", FIELD_LABELS.from, inputs.from),
          field("ag-until", FIELD_LABELS.until, inputs.until, "En urgence, quatre mois au plus (CASF L421-6). Vide : jusqu'à décision contraire."),
        ),
      );
    } else if (action === "withdraw") {
      inputs.on = el("input", { id: "ag-on", type: "date", value: today(), max: today(), required: true });
      inputs.reason = el("select", { id: "ag-reason", required: true, "aria-required": "true" }, reasonOptions(MOTIFS_RETRAIT));
      fields.push(field("ag-reason", "Motif (obligatoire)", inputs.reason), field("ag-on", FIELD_LABELS.on, inputs.on));
    } else if (action === "renewal") {
      inputs.requested_on = el("input", { id: "ag-requested_on", type: "date", value: today(), max: today(), required: true });
      fields.push(field("ag-requested_on", FIELD_LABELS.requested_on, inputs.requested_on));
    }
    const result = el("div", { class: "resultat", role: "status", "aria-live": "polite" });
    const confirm = el("button", { type: "submit", class: "fr-btn bouton principal" }, spec.confirm);
    const cancel = el("button", { type: "button", class: "fr-btn fr-btn--secondary bouton secondaire" }, "Annuler");
    const heading = el("h3", { id: "titre-action-agrement", tabindex: "-1" }, `${spec.title} ${agrement.number}`);
    const form = el(
      "form",
      { class: "formulaire action-agrement", novalidate: true, "aria-labelledby": "titre-action-agrement", dataset: { action } },
      heading,
      el(
        "p",
        { class: "aide" },
        `${communeName(agrement.commune)} · valable jusqu'au ${fmt.day(agrement.valid_until)} · état : ${stateText(agrement)}.`,
        action === "suspend" || action === "withdraw"
          ? " Les places libres de l'assistant familial sont retirées de l'offre, ses réservations en cours libérées, et les autorités qui lui ont confié un enfant prévenues."
          : "",
      ),
      ...fields,
      result,
      el("div", { class: "boutons" }, confirm, cancel),
    );
    const close = () => {
      box.replaceChildren();
      st.open = null;
      if (opener && opener.isConnected) opener.focus();
      else $("table-agrements").closest(".tableau-defilant").focus();
    };
    cancel.addEventListener("click", close);
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
    });
    const showErrors = (errors) => {
      for (const node of form.querySelectorAll(".erreur-champ")) {
        node.hidden = true;
        node.textContent = "";
      }
      for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
      for (const node of form.querySelectorAll(".champ.en-erreur")) node.classList.remove("en-erreur");
      let first = null;
      for (const { field: name, message } of errors) {
        const input = inputs[name];
        if (!input) continue;
        const node = $(`${input.id}-erreur`);
        node.textContent = `${FIELD_LABELS[name] || name} : ${message}`;
        node.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", [`${input.id}-erreur`, input.id === "ag-until" ? "ag-until-aide" : null].filter(Boolean).join(" "));
        input.closest(".champ").classList.add("en-erreur");
        first = first || input;
      }
      return first;
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      result.replaceChildren();
      // A coded reason is required (CASF L421-6 decisions are reasoned): said at once,
      // beside the field, before anything is sent.
      if (inputs.reason && !inputs.reason.value) {
        showErrors([{ field: "reason", message: "choisissez un motif dans la liste, il est obligatoire." }])?.focus();
        return;
      }
      const body = {};
      for (const [name, input] of Object.entries(inputs)) {
        if (input.value) body[name] = input.value;
      }
      showErrors([]);
      if (!key.value) key.value = newKey();
      confirm.disabled = true;
      try {
        await api(`/v1/agrements/${agrement.carer_id}/${spec.path}`, {
          method: "POST",
          body,
          headers: { "Idempotency-Key": key.value, "If-Match": `"${agrement.version}"` },
        });
        key.value = null;
        box.replaceChildren();
        st.open = null;
        const text = `${spec.done} : ${agrement.number} (${communeName(agrement.commune)}).`;
        st.notice = text;
        announce(announcer, text);
        await reload();
        $("titre-agrements").setAttribute("tabindex", "-1");
        $("titre-agrements").focus();
      } catch (error) {
        if (!(error instanceof ApiError && error.network)) key.value = null;
        let text = explain(error);
        if (error instanceof ApiError && error.status === 422) {
          const first = showErrors(error.problem.errors || []);
          text = `Décision refusée, rien n'a été enregistré. ${error.problem.detail || ""}`;
          first?.focus();
        } else if (error instanceof ApiError && (error.status === 409 || error.status === 412)) {
          text = "Cet agrément a changé entre-temps (une autre décision a été enregistrée) : rien n'a été enregistré. La liste est rechargée ; vérifiez l'agrément puis recommencez.";
          reload();
        }
        result.replaceChildren(el("p", { class: "fr-alert fr-alert--error fr-alert--sm alerte", role: "alert" }, text));
      } finally {
        confirm.disabled = false;
      }
    });
    st.open = { carer: agrement.carer_id, action };
    box.replaceChildren(form);
    heading.focus();
  }

  // --- to review ---------------------------------------------------------------------------

  async function fetchToReview() {
    let page;
    try {
      page = await api("/v1/placements/to-review?limit=200");
    } catch (error) {
      $("table-a-revoir").tBodies[0].replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "vide" }, explain(error))));
      return;
    }
    toReview.items = page.items;
    // The references of our own placements (the others' are theirs): one read of the list.
    const ours = page.items.filter((p) => p.placing_authority === code && !toReview.references.has(p.request_id));
    if (ours.length) {
      try {
        const placed = await api(`/v1/requests?authority=${encodeURIComponent(code)}&status=placed&limit=500`);
        for (const r of placed.items) toReview.references.set(r.id, r.reference);
      } catch {
        // the references are a convenience: the list stands without them
      }
    }
    renderToReview();
  }

  function renderToReview() {
    const body = $("table-a-revoir").tBodies[0];
    if (!toReview.items.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "vide" }, "Aucun accueil à revoir.")));
      return;
    }
    body.replaceChildren(
      ...toReview.items.map((p) => {
        const roles = [
          p.placing_authority === code ? "a placé l'enfant" : null,
          p.employing_authority === code ? "emploie l'assistant familial" : null,
          p.issuing_authority === code ? "a délivré l'agrément" : null,
        ].filter(Boolean);
        const reason = p.suspension_reason
          ? MOTIFS_SUSPENSION[p.suspension_reason] || p.suspension_reason
          : p.withdrawal_reason
            ? MOTIFS_RETRAIT[p.withdrawal_reason] || p.withdrawal_reason
            : "—";
        return el(
          "tr",
          { id: `revoir-${p.placement_id}` },
          el("th", { scope: "row" }, toReview.references.get(p.request_id) || (p.placing_authority === code ? "Demande placée" : `Demande de l'autorité ${p.placing_authority}`)),
          el("td", {}, el("span", { class: `badge etat-${p.agrement_state}` }, ETATS_AGREMENT[p.agrement_state] || p.agrement_state)),
          el("td", {}, reason),
          el("td", { class: "nombre" }, fmt.n(p.places)),
          el("td", {}, fmt.dateTime(p.admitted_at)),
          el("td", {}, roles.join(", ") || "—"),
        );
      }),
    );
  }

  // --- loading and live ----------------------------------------------------------------------

  async function reload() {
    await Promise.all([loadLists().then(render), loadToReview()]);
  }

  const reloadSoon = coalesce(async () => {
    try {
      await reload();
    } catch (error) {
      $("resume-agrements").textContent = explain(error);
    }
  }, 400);

  // One list a tab; the list's summary and table move into the selected tab's panel.
  setUpTabs($("choix-agrements"), (tab, panel) => {
    st.list = tab.dataset.liste;
    panel.append($("contenu-agrements"));
    render();
  });

  async function load() {
    try {
      await reload();
    } catch (error) {
      $("table-agrements").tBodies[0].replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "vide" }, explain(error))));
    }
  }

  function onEvent(message) {
    if (message.type === "carer.agrement_updated" || message.type === "placement.to_review") {
      reloadSoon();
      if (message.type === "placement.to_review") announce(announcer, "Un accueil est à revoir : l'agrément de l'assistant familial n'est plus valide.");
    }
  }

  return { onEvent, load };
}
