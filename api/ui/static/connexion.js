// Sign-in. Local mode: pick a role and its scope, get a token from POST /ui/dev-token (the
// dev issuer, only when no OIDC issuer is configured). Production: the OIDC link; a token
// returned in the URL fragment (#access_token=…) is kept the same way. Either way the token
// stays in this tab's sessionStorage and the pages send it as a bearer token.

import {
  api,
  describeSession,
  el,
  explain,
  homeOf,
  initHeader,
  pageData,
  saveToken,
  session,
  showAlert,
  signOut,
} from "./common.js";

const PAGE = pageData();
const $ = (id) => document.getElementById(id);

/** Where to go after signing in: ?retour= when it is one of our pages, else the role's home. */
function destination(claims) {
  const back = new URLSearchParams(location.search).get("retour");
  if (back && back.startsWith("/ui/") && !back.startsWith("//")) return back;
  return homeOf(claims);
}

function showCurrent() {
  const current = session();
  const box = $("session-courante");
  if (!current || !box) return;
  box.replaceChildren(
    "Vous êtes connecté comme ",
    el("strong", {}, describeSession(current.claims)),
    ". ",
    el("a", { href: homeOf(current.claims) }, "Continuer"),
    " ou ",
    el("button", { type: "button", class: "bouton petit secondaire", onclick: signOut }, "se déconnecter"),
    ".",
  );
  box.hidden = false;
}

function showScopeFields(role) {
  for (const field of document.querySelectorAll("[data-pour]")) field.hidden = field.dataset.pour !== role;
}

function acceptFragmentToken() {
  // OIDC return: #access_token=…&token_type=Bearer…
  if (!location.hash.includes("access_token=")) return false;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("access_token");
  history.replaceState(null, "", location.pathname + location.search);
  if (!token) return false;
  saveToken(token);
  const current = session();
  if (current) location.assign(destination(current.claims));
  return Boolean(current);
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("erreur-connexion");
  error.hidden = true;
  const role = form.querySelector("input[name=role]:checked").value;
  const body = { role };
  if (role === "structure") body.finess = $("finess").value.trim().toUpperCase();
  if (role === "carer") body.carer_id = $("carer_id").value.trim();
  if (role === "department") body.department = $("department").value;
  if (role === "structure" && !body.finess) {
    showAlert(error, "Indiquez le numéro FINESS de l'établissement.");
    $("finess").focus();
    return;
  }
  if (role === "carer" && !body.carer_id) {
    showAlert(error, "Indiquez l'identifiant de l'assistant familial.");
    $("carer_id").focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const out = await api("/ui/dev-token", { method: "POST", body });
    saveToken(out.access_token);
    location.assign(destination(session().claims));
  } catch (err) {
    const first = err.problem?.errors?.[0];
    const message = first && first.message && !/Input should|valid UUID/.test(first.message)
      ? `Connexion refusée : ${first.message}.`
      : err.status === 422 && body.carer_id
        ? "Connexion refusée : l'identifiant d'assistant familial n'a pas le bon format (UUID)."
        : `Connexion refusée. ${explain(err)}`;
    showAlert(error, message);
  } finally {
    button.disabled = false;
  }
}

function main() {
  if (acceptFragmentToken()) return;
  initHeader();
  showCurrent();
  const link = $("lien-oidc");
  if (link && PAGE.oidc_url) {
    const url = new URL(PAGE.oidc_url, location.href);
    if (!url.searchParams.has("redirect_uri")) url.searchParams.set("redirect_uri", `${location.origin}/ui/connexion`);
    link.href = url.toString();
  }
  const form = $("form-connexion");
  if (!form) return;
  for (const radio of form.querySelectorAll("input[name=role]")) {
    radio.addEventListener("change", () => showScopeFields(radio.value));
  }
  showScopeFields(form.querySelector("input[name=role]:checked").value);
  form.addEventListener("submit", signIn);
}

main();
