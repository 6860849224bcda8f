// Sign-in. Local mode: pick a role and its scope, get a token from POST /ui/dev-token (the
// dev issuer, only when no OIDC issuer is configured). Production: the identity provider,
// with the authorization code flow and PKCE when its token endpoint and our client id are
// configured (a random verifier and state kept in this tab; the provider returns ?code=&state=
// and the page exchanges the code with the verifier), else a token returned in the URL
// fragment (#access_token=…). Either way the token stays in this tab's sessionStorage and the
// pages send it as a bearer token. Then GET /v1/me says what it may do; a person holding
// several habilitations chooses one here (also reached from the header, ?choisir=1).

import {
  api,
  chooseHabilitation,
  describeSession,
  el,
  explain,
  homeOf,
  initHeader,
  loadSession,
  pageData,
  ready,
  saveToken,
  session,
  showAlert,
  signOut,
} from "./common.js";

const PAGE = pageData();
const $ = (id) => document.getElementById(id);

/** Where to go after signing in: ?retour= when it is one of our pages, else the role's home. */
function destination(current, back = new URLSearchParams(location.search).get("retour")) {
  if (back && back.startsWith("/ui/") && !back.startsWith("//")) return back;
  return homeOf(current);
}

/**
 * A token was just saved: ask /v1/me what it may do, then go on — or, for a person holding
 * several habilitations, ask which one first.
 */
async function finishSignIn(back) {
  const error = $("erreur-connexion");
  let current;
  try {
    current = await loadSession();
  } catch (err) {
    showAlert(error, `Connexion impossible. ${explain(err)}`);
    return false;
  }
  if (!current) {
    showAlert(error, "Le jeton reçu est expiré, illisible ou refusé. Recommencez.");
    return false;
  }
  if (current.mustChoose) {
    initHeader(current);
    showChooser(current, back);
    return false;
  }
  location.assign(destination(current, back));
  return true;
}

// --- choosing a habilitation ---------------------------------------------------------------

function territory(grant) {
  if (grant.finess) return `établissement FINESS ${grant.finess}${grant.authority ? ` (autorité ${grant.authority})` : ""}`;
  if (grant.carer_id) return `assistant familial ${grant.carer_id.slice(0, 8)}…${grant.authority ? ` (autorité ${grant.authority})` : ""}`;
  if (grant.authority) return `autorité ${grant.authority}`;
  return "national";
}

/** A fieldset of radio buttons, one per live habilitation, and a button to act under it. */
function showChooser(current, back) {
  const box = $("choix-habilitation");
  if (!box) return;
  const grants = current.me.habilitations;
  const chosen = current.habilitation || String(grants[0].id);
  const form = el(
    "form",
    { class: "formulaire", id: "form-habilitation", novalidate: true },
    el(
      "fieldset",
      {},
      el("legend", {}, "J'agis en tant que"),
      el(
        "div",
        { class: "choix-roles" },
        grants.map((g) =>
          el(
            "label",
            { class: "choix" },
            el("input", { type: "radio", name: "habilitation", value: String(g.id), checked: String(g.id) === chosen }),
            ` ${g.function_label} `,
            el("span", { class: "aide" }, `(${territory(g)})`),
          ),
        ),
      ),
    ),
    el("button", { type: "submit", class: "fr-btn bouton principal" }, "Continuer"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    chooseHabilitation(form.querySelector("input[name=habilitation]:checked").value);
    await finishSignIn(back);
  });
  box.replaceChildren(
    el("h2", { id: "titre-choix", tabindex: "-1" }, "Choisir une habilitation"),
    el("p", {}, "Vous avez plusieurs habilitations. Chaque action est faite, et enregistrée, sous celle que vous choisissez ; vous pourrez en changer depuis le bandeau."),
    form,
  );
  box.hidden = false;
  $("session-courante").hidden = true;
  $("titre-choix").focus();
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
  return finishSignIn(saved.back);
}

function showCurrent(current) {
  const box = $("session-courante");
  if (!current || !box) return;
  const home = homeOf(current);
  box.replaceChildren(
    "Vous êtes connecté comme ",
    el("strong", {}, describeSession(current)),
    ". ",
    // What a person gives their authority's administrator to be habilitated.
    ...(current.me ? ["Votre identifiant (", el("code", {}, "sub"), ") : ", el("code", { id: "mon-sub" }, current.me.sub), ". "] : []),
    ...(home === "/ui/connexion" ? ["Vous pouvez "] : [el("a", { href: home }, "Continuer"), " ou "]),
    el("button", { type: "button", class: "fr-btn fr-btn--secondary fr-btn--sm bouton petit secondaire", onclick: signOut }, "se déconnecter"),
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
  return Boolean(session());
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("erreur-connexion");
  error.hidden = true;
  const role = form.querySelector("input[name=role]:checked").value;
  const body = { role };
  if (role === "structure") body.finess = $("finess").value.trim().toUpperCase();
  if (role === "carer") body.agrement = $("agrement").value.trim();
  if (role === "department") body.authority = $("authority").value;
  if (role === "structure" && !body.finess) {
    showAlert(error, "Indiquez le numéro FINESS de l'établissement.");
    $("finess").focus();
    return;
  }
  if (role === "carer" && !body.agrement) {
    showAlert(error, "Indiquez votre numéro d'agrément.");
    $("agrement").focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const out = await api("/ui/dev-token", { method: "POST", body });
    saveToken(out.access_token);
    await finishSignIn();
  } catch (err) {
    const first = err.problem?.errors?.[0];
    const message = first && first.message && !/Input should/.test(first.message)
      ? `Connexion refusée : ${first.message.replace(/[.\s]+$/, "")}.`
      : `Connexion refusée. ${explain(err)}`;
    showAlert(error, message);
  } finally {
    button.disabled = false;
  }
}

async function main() {
  if (acceptFragmentToken()) {
    await finishSignIn();
    return;
  }
  if (await acceptCode()) return;
  const current = await ready;
  const params = new URLSearchParams(location.search);
  const notice = $("message-connexion");
  if (notice && params.get("deconnexion") === "partout") {
    notice.textContent = "Vous êtes déconnecté partout : toutes vos sessions ouvertes jusqu'ici sont fermées, sur tous vos appareils.";
    notice.hidden = false;
  } else if (notice && params.get("deconnexion") === "echec") {
    notice.textContent = "La déconnexion de partout n'a pas été confirmée par le service ; cet onglet est déconnecté. Reconnectez-vous puis réessayez.";
    notice.hidden = false;
  }
  if (current?.mustChoose || (current && params.has("choisir") && (current.me?.habilitations || []).length > 1)) {
    showChooser(current, params.get("retour"));
  } else {
    showCurrent(current);
  }
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
