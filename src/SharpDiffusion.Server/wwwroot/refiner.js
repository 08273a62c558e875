// The SDXL refiner (A1111's refiner_checkpoint, refiner_switch_at): the base model denoises the first
// refiner_switch_at of the schedule, the refiner the rest, on the same latents (diffusers' denoising_end/start).
// Shown only for an SDXL base model when /sdapi/v1/sd-models lists a refiner: its family "SDXL refiner", or for a
// single file (whose family the list cannot tell before loading) a name saying so, as sd_xl_refiner_1.0 does.
import { $, fillSelect, hasOption, numberOf, setAvailable, state } from './dom.js';

const r = { section: $('refiner'), checkpoint: $('refiner-checkpoint'), switchAt: $('refiner-switch-at') };

const NONE = 'None';

function isRefiner(m) { return Boolean(m && /refiner/i.test(`${m.family || ''} ${m.model_name || m.title || ''}`)); }

/** "SDXL", or a single file's "SD 1.x/2.x or SDXL" (the server refuses a refiner after a non-SDXL base in one line). */
function isSdxlBase(m) { return Boolean(m && /SDXL/.test(String(m.family || '')) && !isRefiner(m)); }

export async function load() { /* the refiners are sd-models entries, loaded with the models */ }

export function showFor(model) {
  const refiners = (state.models || []).filter(isRefiner);
  const keep = r.checkpoint.value || NONE;
  fillSelect(r.checkpoint, [[NONE, 'None'], ...refiners.map((m) => [m.title, m.model_name || m.title])], keep);
  if (!hasOption(r.checkpoint, keep)) r.checkpoint.value = NONE;
  setAvailable(r.section, isSdxlBase(model) && refiners.length > 0);
}

export function addTo(body) {
  if (r.section.dataset.unavailable === 'true' || r.checkpoint.value === NONE) return;
  body.refiner_checkpoint = r.checkpoint.value;
  body.refiner_switch_at = numberOf(r.switchAt);
}

/** Infotext: "Refiner: name [hash], Refiner switch at: 0.8". */
export function reuse(f) {
  const name = f.Refiner;
  const match = name ? [...r.checkpoint.options].find((o) => o.value === name || o.textContent === name || name.startsWith(`${o.textContent} [`)) : null;
  r.checkpoint.value = match ? match.value : NONE;
  if (f['Refiner switch at']) r.switchAt.value = f['Refiner switch at'];
}
