// Habilitations of one authority: its administrators grant and revoke (the platform
// operator grants administrators). Every call goes to /v1/authorities/{code}/habilitations
// with the session's token; the API decides who may do what and the page says its refusal.

import { api, el, explain, hideAlert, newKey, pageData, requireSession, showAlert } from "./common.js";

const PAGE = pageData();
const $ = (id) => document.getElementById(id);
const alertBox = $("alerte-page");
const path = `/v1/authorities/${encodeURIComponent(PAGE.code)}/habilitations`;
const LABELS = Object.fromEntries(PAGE.functions.map((f) => [f.name, f.label]));

function territory(h) {
  if (h.finess) return `FINESS ${h.finess}`;
  if (h.carer_id) return `Assistant familial ${h.carer_id.slice(0, 8)}…`;
  return `Autorité ${h.authority}`;
}

async function load() {
  const body = $("table-habilitations").tBodies[0];
  try {
    const page = await api(path);
    hideAlert(alertBox);
    if (!page.items.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 5 }, "Aucune habilitation en cours.")));
      return;
    }
    body.replaceChildren(
      ...page.items.map((h) => {
        const who = h.person.display_name || h.person.sub;
        const revoke = el(
          "button",
          { type: "button", class: "fr-btn fr-btn--sm bouton petit", "aria-label": `Retirer l'habilitation de ${who} (${LABELS[h.function] || h.function})` },
          "Retirer",
        );
        revoke.addEventListener("click", async () => {
          revoke.disabled = true;
          try {
            await api(`${path}/${h.id}`, { method: "DELETE" });
            await load();
          } catch (error) {
            revoke.disabled = false;
            showAlert(alertBox, explain(error));
          }
        });
        return el(
          "tr",
          { dataset: { id: h.id } },
          el("td", {}, who, h.person.display_name ? el("span", { class: "aide" }, ` (${h.person.sub})`) : null),
          el("td", {}, h.function_label),
          el("td", {}, territory(h)),
          el("td", {}, `${h.granted_by}, ${new Date(h.granted_at).toLocaleString("fr-FR")}`),
          el("td", {}, revoke),
        );
      }),
    );
  } catch (error) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 5 }, "Liste indisponible.")));
    showAlert(alertBox, explain(error));
  }
}

async function main() {
  if (!(await requireSession(["authority_admin", "operator"], alertBox))) return;
  const form = $("form-habilitation");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { sub: data.get("sub").trim(), function: data.get("function") };
    for (const name of ["display_name", "finess", "carer_id"]) {
      const value = (data.get(name) || "").trim();
      if (value) body[name] = value;
    }
    try {
      await api(path, { method: "POST", body, headers: { "Idempotency-Key": newKey() } });
      form.reset();
      await load();
    } catch (error) {
      showAlert(alertBox, explain(error));
    }
  });
  load();
}

main();
