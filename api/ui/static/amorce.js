// The first screen's API calls, started as soon as the page's head is read: a classic async
// script (the pages' Content-Security-Policy forbids inline scripts) that the browser fetches
// alongside the stylesheets, rather than after the page's modules and their imports. On a slow
// phone (150 ms a round trip) this saves the module graph's depth before the first call.
//
// Its `data-urls` attribute maps each path to the permission it needs (null: none); a path is
// skipped when the session already known in this tab lacks it (no refused call for nothing).
// The responses wait in `window.placesEarly`; api() in common.js takes each one once, only
// for the same token and habilitation, and calls again otherwise.
(() => {
  const script = document.currentScript;
  const token = sessionStorage.getItem("places.jeton");
  if (!script || !token) return;
  let me = null;
  try {
    me = JSON.parse(sessionStorage.getItem("places.moi") || "null");
  } catch {
    me = null;
  }
  const habilitation = sessionStorage.getItem("places.habilitation");
  const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
  if (habilitation) headers["X-Places-Habilitation"] = habilitation;
  const early = new Map();
  for (const [path, permission] of Object.entries(JSON.parse(script.dataset.urls || "{}"))) {
    if (permission && me && !(me.permissions || []).includes(permission)) continue;
    early.set(path, { token, habilitation, response: fetch(path, { headers }).catch(() => null) });
  }
  window.placesEarly = early;
})();
