// Sign-in. Local mode: pick a role and its scope, get a token from POST /ui/dev-token (the
// dev issuer, only when no OIDC issuer is configured). Production: the identity provider,
// with the authorization code flow and PKCE when its token endpoint and our client id are
// configured (a random verifier and state kept in this tab; the provider returns ?code=&state=
// and the page exchanges the code with the verifier), else a token returned in the URL
// fragment (#access_token=…). Either way the token stays in this tab's sessionStorage and the
// pages send it as a bearer token.

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
function destination(claims, back = new URLSearchParams(location.search).get("retour")) {
  if (back && back.startsWith("/ui/") && !back.startsWith("//")) return back;
  return homeOf(claims);
}

// --- OIDC authorization code flow with PKCE (RFC 7636) -------------------------------------

const PKCE_KEY = "places.pkce";
const REDIRECT_URI = `${location.origin}/ui/connexion`;

function base64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(size) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function startPkce(event) {
  event.preventDefault();
  const verifier = randomString(32); // 43 characters, the minimum RFC 7636 allows
  const state = randomString(16);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const back = new URLSearchParams(location.search).get("retour");
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, back }));
  const url = new URL(PAGE.oidc_url, location.href);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", PAGE.oidc_client_id);
  url.searchParams.set("redirect_uri", REDIRECT_URI);
  url.searchParams.set("scope", PAGE.oidc_scope || "openid");
  url.searchParams.set("state", state);
  url.searchParams.set("code_challenge", challenge);
  url.searchParams.set("code_challenge_method", "S256");
  location.assign(url.toString());
}

/** Back from the provider with ?code=&state= (or ?error=): exchange the code for a token. */
async function acceptCode() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, "", location.pathname); // the code is single-use: not in history
  const error = $("erreur-connexion");
  if (params.has("error")) {
    showAlert(error, `Connexion refusée par le fournisseur d'identité (${params.get("error")}).`);
    return false;
  }
  if (!saved || saved.state !== params.get("state")) {
    showAlert(error, "Connexion refusée : la réponse du fournisseur d'identité ne correspond pas à cette demande. Recommencez.");
    return false;
  }
  try {
    const response = await fetch(PAGE.oidc_token_url, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: params.get("code"),
        redirect_uri: REDIRECT_URI,
        client_id: PAGE.oidc_client_id,
        code_verifier: saved.verifier,
      }),
    });
    const out = await response.json().catch(() => ({}));
    if (!response.ok || !out.access_token) {
      showAlert(error, `Connexion refusée par le fournisseur d'identité${out.error ? ` (${out.error})` : ""}. Recommencez.`);
      return false;
    }
    saveToken(out.access_token);
  } catch {
    showAlert(error, "Le fournisseur d'identité ne répond pas. Réessayez dans un instant.");
    return false;
  }
  const current = session();
  if (!current) {
    showAlert(error, "Le jeton reçu est expiré ou illisible. Recommencez.");
    return false;
  }
  location.assign(destination(current.claims, saved.back));
  return true;
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
  if (role === "department") body.authority = $("authority").value;
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

async function main() {
  if (acceptFragmentToken()) return;
  initHeader();
  if (await acceptCode()) return;
  showCurrent();
  const link = $("lien-oidc");
  if (link && PAGE.oidc_url && PAGE.oidc_token_url && PAGE.oidc_client_id) {
    link.addEventListener("click", startPkce);
  } else if (link && PAGE.oidc_url) {
    const url = new URL(PAGE.oidc_url, location.href);
    if (!url.searchParams.has("redirect_uri")) url.searchParams.set("redirect_uri", REDIRECT_URI);
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
