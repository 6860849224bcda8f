// The committed departments map (api/ui/static/france-departments.svg, inlined by the server)
// and how to put points on it without any online tile: a quadratic (lon, lat) → (x, y)
// fitted by api/ui/build_assets.py for metropolitan France, a local equirectangular frame
// for an overseas department (drawn from its communes' centres).

import { svgEl } from "./common.js";

export function franceSvg(container) {
  return container.querySelector("svg");
}

/** The map in `container`: inlined by the server (national page), or fetched once from its
 * immutable URL in `data-carte` (the authority's dashboard, whose first screen is sent
 * without its 28 kB: the map comes after the waiting list). */
export async function loadFranceSvg(container) {
  if (!franceSvg(container) && container.dataset.carte) {
    const response = await fetch(container.dataset.carte);
    if (!response.ok) throw new Error(`carte : ${response.status}`);
    const parsed = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
    container.append(document.importNode(parsed.documentElement, true));
  }
  return franceSvg(container);
}

/** (lon, lat) → SVG (x, y) on the metropolitan map. */
export function metroProjection(svg) {
  const p = JSON.parse(svg.dataset.projection);
  const terms = (lon, lat) => [1, lon, lat, lon * lon, lon * lat, lat * lat];
  return (lon, lat) => {
    const t = terms(lon, lat);
    let x = 0;
    let y = 0;
    for (let i = 0; i < 6; i += 1) {
      x += p.x[i] * t[i];
      y += p.y[i] * t[i];
    }
    return [x, y];
  };
}

/** Zoom the map on one department or several (an authority's), and a margin around them. */
export function zoomOn(svg, codes, margin = 0.12) {
  const boxes = [codes].flat()
    .map((code) => svg.querySelector(`#dep-${CSS.escape(code)}`))
    .filter(Boolean)
    .map((path) => path.getBBox());
  if (!boxes.length) return null;
  const x0 = Math.min(...boxes.map((b) => b.x));
  const y0 = Math.min(...boxes.map((b) => b.y));
  const box = {
    x: x0,
    y: y0,
    width: Math.max(...boxes.map((b) => b.x + b.width)) - x0,
    height: Math.max(...boxes.map((b) => b.y + b.height)) - y0,
  };
  const side = Math.max(box.width, box.height) * (1 + 2 * margin);
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  const viewBox = [cx - side / 2, cy - side / 2, side, side];
  svg.setAttribute("viewBox", viewBox.map((v) => v.toFixed(1)).join(" "));
  svg.classList.add("zoom");
  return { side };
}

/**
 * A frame for an overseas department: its communes' centres give the extent, drawn as faint
 * dots so the territory's shape shows; returns the projection into a fresh SVG.
 */
export function localFrame(container, communes, title) {
  const lats = communes.map((c) => c.lat);
  const lons = communes.map((c) => c.lon);
  const lat0 = (Math.min(...lats) + Math.max(...lats)) / 2;
  const k = Math.cos((lat0 * Math.PI) / 180);
  const xs = lons.map((l) => l * k);
  const minX = Math.min(...xs);
  const maxX = Math.max(...xs);
  const minY = -Math.max(...lats);
  const maxY = -Math.min(...lats);
  const span = Math.max(maxX - minX, maxY - minY, 0.05);
  const scale = 400 / (span * 1.3);
  const ox = (minX + maxX) / 2;
  const oy = (minY + maxY) / 2;
  const project = (lon, lat) => [200 + (lon * k - ox) * scale, 200 + (-lat - oy) * scale];
  const svg = svgEl("svg", {
    viewBox: "0 0 400 400",
    class: "carte-france zoom locale",
    role: "img",
    "aria-label": title,
  });
  const base = svgEl("g", { class: "communes-fond" });
  for (const c of communes) {
    const [x, y] = project(c.lon, c.lat);
    base.append(svgEl("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3 }));
  }
  svg.append(base);
  container.replaceChildren(svg);
  return { svg, project, side: 400 };
}

/** An empty layer on top of the map (re-created on each render). */
export function layer(svg, id) {
  let g = svg.querySelector(`#${id}`);
  if (g) g.replaceChildren();
  else {
    g = svgEl("g", { id, class: "couche" });
    svg.append(g);
  }
  return g;
}

/** Classes of a value among thresholds: 0 … thresholds.length. */
export function classOf(value, thresholds) {
  let i = 0;
  while (i < thresholds.length && value >= thresholds[i]) i += 1;
  return i;
}
