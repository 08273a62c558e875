// A1111's variation seed and tiling: the starting noise is slerp(noise(seed), noise(subseed), subseed_strength),
// with the seed's noise made at seed_resize_from_w × seed_resize_from_h and centred in the output's (so a picture can
// keep its look at another size); tiling makes every conv pad circularly, so the picture repeats seamlessly.
import { $, numberOf } from './dom.js';

const v = {
  subseed: $('subseed'), strength: $('subseed-strength'),
  resizeW: $('seed-resize-from-w'), resizeH: $('seed-resize-from-h'), random: $('subseed-random'), tiling: $('tiling'),
};

v.random.addEventListener('click', () => { v.subseed.value = '-1'; });

export async function load() { /* the server's fields need no list */ }

export function showFor() { }

export function addTo(body) {
  const strength = numberOf(v.strength);
  // Sent only when they change the picture: strength 0 is the seed's own noise, a size of 0 is the output's.
  if (strength !== 0 && strength !== undefined) {
    body.subseed = numberOf(v.subseed);
    body.subseed_strength = strength;
  }
  const w = numberOf(v.resizeW), h = numberOf(v.resizeH);
  if ((w !== undefined && w !== 0) || (h !== undefined && h !== 0)) {
    body.seed_resize_from_w = w ?? 0;
    body.seed_resize_from_h = h ?? 0;
  }
  if (v.tiling.checked) body.tiling = true;
}

/** Infotext: "Variation seed: 99, Variation seed strength: 0.4, Seed resize from: 48x80, Tiling: True". */
export function reuse(f) {
  v.subseed.value = f['Variation seed'] ?? '-1';
  v.strength.value = f['Variation seed strength'] ?? '0';
  const from = /^(\d+)x(\d+)$/.exec(f['Seed resize from'] || '');
  v.resizeW.value = from ? from[1] : '0';
  v.resizeH.value = from ? from[2] : '0';
  v.tiling.checked = f.Tiling === 'True';
}
