// A live feed (WS /ws/authorities/{code} or /ws/national) that resumes where it stopped.
//
// Why it is shaped like this: the page loads its snapshot through the REST API, but an event
// can be committed while that snapshot is in flight. So the feed is opened FIRST and its
// events are held until the snapshot is there, then applied (the page ignores what the
// snapshot already contains, by version). Afterwards every event id is remembered, and a
// lost connection reconnects with `last_event_id`: the server replays what was missed, in
// order, once. Close codes of the server (realtime/routes.py): 4401 token, 4403 scope,
// 4404 unknown authority, 4410 history too old (reload the snapshot), 4400 bad id,
// 1013 too slow or feed unavailable (resume).

import { pageData, session } from "./common.js";

const STATES = {
  attente: "Connexion au flux en direct…",
  direct: "En direct",
  deconnecte: "Hors ligne",
  arret: "Flux arrêté",
};

/**
 * How long without any message (event or ping) before the feed is taken for lost: the
 * server pings every `ws_ping_seconds` (realtime.hub), so one missed ping and a margin.
 * A cut network often closes nothing (no TCP reset reaches the browser): without this the
 * badge would say "En direct" for minutes.
 */
const SILENCE_MS = ((pageData().ws_ping_seconds || 25) * 1.5 + 1) * 1000;

export class LiveFeed {
  /**
   * @param {string} path  "/ws/authorities/69M" or "/ws/national"
   * @param {{onEvent: Function, onResync: Function, status: HTMLElement, reconnectButton?: HTMLElement}} options
   */
  constructor(path, { onEvent, onResync, status, reconnectButton }) {
    this.path = path;
    this.onEvent = onEvent;
    this.onResync = onResync;
    this.status = status;
    this.button = reconnectButton;
    this.lastEventId = null;
    this.held = [];
    this.ready = false;
    this.attempt = 0;
    this.socket = null;
    this.retryTimer = null;
    this.countdownTimer = null;
    this.stopped = false;
    this.watchdog = null;
    if (this.button) this.button.addEventListener("click", () => this.reconnectNow());
    window.addEventListener("online", () => this.reconnectNow());
    // The browser knows the network is gone: say so now, do not wait for a missed ping.
    window.addEventListener("offline", () => this.lost());
  }

  /** A message arrived: the feed is alive; the next one must come within SILENCE_MS. */
  heard(socket) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.socket === socket) this.lost();
    }, SILENCE_MS);
  }

  /** The feed is silent or the network gone: drop the socket, say "Hors ligne", retry. */
  lost() {
    if (this.stopped || !this.socket) return;
    const socket = this.socket;
    clearTimeout(this.watchdog);
    clearTimeout(this.openTimer);
    this.socket = null;
    try {
      socket.close(4000);
    } catch {
      // already closing
    }
    this.scheduleRetry();
  }

  /** Open the socket; events are held until `release()` (snapshot loaded). */
  start() {
    this.stopped = false;
    this.open();
  }

  /**
   * Open the socket after the page drew a snapshot from a read that said which position of
   * this feed it is consistent with (`Places-Feed-Position`, #19: a statistics read may come
   * from a standby a little behind): the server replays every event after it, so nothing
   * that happened between the snapshot and the subscription is missed. Without a position
   * (none said), the feed starts live.
   * @param {string | null} position  the feed's entry id, e.g. "1732801234567-0"
   */
  startAfter(position) {
    if (position && !this.lastEventId) this.lastEventId = position;
    this.start();
  }

  release() {
    this.ready = true;
    const held = this.held;
    this.held = [];
    for (const message of held) this.deliver(message);
  }

  open() {
    const current = session();
    if (!current) {
      this.setState("arret", "Flux arrêté : session expirée, reconnectez-vous.");
      return;
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams();
    // A browser cannot set X-Places-Habilitation on a WebSocket: the chosen one goes here.
    if (current.habilitation) params.set("habilitation", current.habilitation);
    if (this.lastEventId) params.set("last_event_id", this.lastEventId);
    const query = params.toString() ? `?${params}` : "";
    // The token goes as a subprotocol, never in the URL (proxies log URLs); the server
    // selects "places.v1" and never echoes the token.
    const socket = new WebSocket(`${scheme}://${location.host}${this.path}${query}`, [
      "places.v1",
      `places.bearer.${current.token}`,
    ]);
    this.socket = socket;
    this.setState("attente");
    socket.addEventListener("message", (e) => {
      let message;
      try {
        message = JSON.parse(e.data);
      } catch {
        return;
      }
      this.heard(socket);
      if (message.type === "ping") return;
      // The first real message, or a ping, proves the subscription is accepted.
      if (message.id) this.lastEventId = message.id;
      if (this.ready) this.deliver(message);
      else this.held.push(message);
    });
    socket.addEventListener("open", () => {
      // The server accepts, then checks the token: wait a moment before claiming "live".
      this.openTimer = setTimeout(() => {
        if (this.socket === socket && socket.readyState === WebSocket.OPEN) {
          this.attempt = 0;
          this.setState("direct");
          this.heard(socket);
        }
      }, 300);
    });
    socket.addEventListener("close", (e) => this.closed(socket, e));
  }

  deliver(message) {
    try {
      this.onEvent(message);
    } catch (error) {
      console.error("event handler failed", error);
    }
  }

  closed(socket, event) {
    if (this.socket !== socket || this.stopped) return;
    clearTimeout(this.openTimer);
    clearTimeout(this.watchdog);
    this.socket = null;
    switch (event.code) {
      case 4401:
        this.setState("arret", "Flux arrêté : session expirée ou jeton refusé. Reconnectez-vous.");
        return;
      case 4403:
        this.setState("arret", "Flux refusé : ce compte n'a pas accès à ce flux.");
        return;
      case 4404:
        this.setState("arret", "Flux indisponible : autorité compétente inconnue.");
        return;
      case 4410:
        // Too far behind: reload the snapshot, then follow live events from now.
        this.lastEventId = null;
        this.ready = false;
        this.open();
        Promise.resolve(this.onResync()).finally(() => this.release());
        return;
      case 4400:
        this.lastEventId = null;
        break;
      default:
        break;
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    const delays = [1, 2, 3, 5, 10, 15];
    const wait = delays[Math.min(this.attempt, delays.length - 1)];
    this.attempt += 1;
    let left = wait;
    const tick = () => {
      this.setState(
        "deconnecte",
        "Hors ligne : le flux en direct est coupé ; les événements manqués seront rattrapés à la reconnexion.",
        `Nouvelle tentative dans ${Math.max(left, 0)} s`,
      );
      left -= 1;
    };
    tick();
    clearInterval(this.countdownTimer);
    this.countdownTimer = setInterval(tick, 1000);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      clearInterval(this.countdownTimer);
      this.open();
    }, wait * 1000);
  }

  reconnectNow() {
    if (this.stopped || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.retryTimer);
    clearInterval(this.countdownTimer);
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.watchdog);
    clearTimeout(this.retryTimer);
    clearInterval(this.countdownTimer);
    if (this.socket) this.socket.close(1000);
  }

  setState(state, text, countdown = "") {
    if (!this.status) return;
    this.status.dataset.etat = state;
    // Only the sentence is a live region; the countdown beside it is not re-announced.
    const label = this.status.querySelector(".texte");
    const message = text || STATES[state];
    if (label.textContent !== message) label.textContent = message;
    const clock = this.status.querySelector(".decompte");
    if (clock) clock.textContent = countdown;
    if (this.button) this.button.hidden = state !== "deconnecte";
  }
}

/**
 * The position of `feed` in a `Places-Feed-Position` header ("national=<id>, 69M=<id>"), or
 * null when the header does not name it.
 * @param {string | null} header
 * @param {string} feed
 */
export function feedPosition(header, feed) {
  for (const part of (header || "").split(",")) {
    const [name, id] = part.trim().split("=");
    if (name === feed && id) return id;
  }
  return null;
}
