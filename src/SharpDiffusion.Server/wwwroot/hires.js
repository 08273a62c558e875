// The hires fix (A1111's txt2img enable_hr): the first pass at the form's size, then its latents or picture upscaled
// by hr_scale (or to hr_resize_x × hr_resize_y) with hr_upscaler, then an img2img pass with denoising_strength and
// its own steps, sampler, prompts and CFG when given. The upscalers are the server's: /sdapi/v1/latent-upscale-modes
// (the torch interpolations on latents) and /sdapi/v1/upscalers (None, Lanczos, Nearest and ESRGAN-family models).
import { optional } from './api.js';
import { $, els, fillSelect, hasOption, numberOf, setAvailable } from './dom.js';

const h = {
  section: $('hires'), enable: $('enable-hr'), fields: $('hires-fields'),
  upscaler: $('hr-upscaler'), scale: $('hr-scale'), resizeX: $('hr-resize-x'), resizeY: $('hr-resize-y'),
  steps: $('hr-steps'), strength: $('hr-strength'), sampler: $('hr-sampler'), cfg: $('hr-cfg'),
  prompt: $('hr-prompt'), negative: $('hr-negative-prompt'),
};

const SAME_SAMPLER = 'Use same sampler'; // A1111's value for "the first pass's sampler"

h.enable.addEventListener('change', () => { h.fields.hidden = !h.enable.checked; });

export async function load() {
  const [latent, upscalers] = await Promise.all([optional('/sdapi/v1/latent-upscale-modes', []), optional('/sdapi/v1/upscalers', [])]);
  const names = [...(Array.isArray(latent) ? latent : []), ...(Array.isArray(upscalers) ? upscalers : [])]
    .map((u) => u && u.name).filter((n) => typeof n === 'string' && n);
  const unique = [...new Set(names)];
  // Without a list (an older server), the select offers only the server's default, A1111's "Latent".
  const entries = unique.length ? unique.map((n) => [n, n]) : [['', 'Latent (the server\'s default)']];
  fillSelect(h.upscaler, entries, unique.includes('Latent') ? 'Latent' : entries[0][0]);
  setAvailable(h.section, true);
}

/** The second pass's sampler list follows the model's (the main Sampler list), after "Use same sampler". */
export function showFor() {
  const keep = h.sampler.value || SAME_SAMPLER;
  const entries = [[SAME_SAMPLER, SAME_SAMPLER], ...[...els.sampler.options].map((o) => [o.value, o.textContent])];
  fillSelect(h.sampler, entries, entries.some(([v]) => v === keep) ? keep : SAME_SAMPLER);
}

export function addTo(body, task) {
  if (task !== 'txt2img' || !h.enable.checked) return;
  body.enable_hr = true;
  if (h.upscaler.value) body.hr_upscaler = h.upscaler.value;
  // A1111: a resize target (either side non-zero) wins over the scale.
  body.hr_scale = numberOf(h.scale);
  body.hr_resize_x = numberOf(h.resizeX);
  body.hr_resize_y = numberOf(h.resizeY);
  body.hr_second_pass_steps = numberOf(h.steps);
  body.denoising_strength = numberOf(h.strength);
  body.hr_sampler_name = h.sampler.value || SAME_SAMPLER;
  if (h.cfg.value.trim()) body.hr_cfg = numberOf(h.cfg);
  if (h.prompt.value.trim()) body.hr_prompt = h.prompt.value;
  if (h.negative.value.trim()) body.hr_negative_prompt = h.negative.value;
}

/** A1111's infotext: "Hires upscale: 2, Hires resize: 128x96, Hires steps: 4, Hires upscaler: Latent, Denoising
 *  strength: 0.6, Hires sampler: ..., Hires CFG Scale: ..., Hires prompt: ..., Hires negative prompt: ...". */
export function reuse(f) {
  const on = Boolean(f['Hires upscale'] || f['Hires resize'] || f['Hires upscaler']);
  h.enable.checked = on;
  h.fields.hidden = !on;
  if (!on) return;
  h.scale.value = f['Hires upscale'] || '2';
  const resize = /^(\d+)x(\d+)$/.exec(f['Hires resize'] || '');
  h.resizeX.value = resize ? resize[1] : '0';
  h.resizeY.value = resize ? resize[2] : '0';
  h.steps.value = f['Hires steps'] || '0';
  if (f['Hires upscaler'] && hasOption(h.upscaler, f['Hires upscaler'])) h.upscaler.value = f['Hires upscaler'];
  if (f['Denoising strength']) h.strength.value = f['Denoising strength'];
  h.sampler.value = f['Hires sampler'] && hasOption(h.sampler, f['Hires sampler']) ? f['Hires sampler'] : SAME_SAMPLER;
  h.cfg.value = f['Hires CFG Scale'] || '';
  h.prompt.value = f['Hires prompt'] || '';
  h.negative.value = f['Hires negative prompt'] || '';
}
