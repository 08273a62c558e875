// The generation form: the server's lists (samplers, schedules, models), the model switch, and the request body the
// form makes. The optional sections (hires fix, variation seed and tiling, refiner, ControlNet, X/Y/Z plot) each add
// their own fields to the body; each loads what it needs from the server and hides itself when the server lacks it.
import { api } from './api.js';
import { els, fillSelect, mode, numberOf, state } from './dom.js';
import * as controlnet from './controlnet.js';
import * as extras from './extras.js';
import * as hires from './hires.js';
import * as modelFields from './model-fields.js';
import { maskPainted, maskPng } from './inpaint.js';
import * as refiner from './refiner.js';
import { clearError, showError } from './status.js';
import * as variation from './variation.js';
import * as xyz from './xyz-grid.js';

/** The sections that add fields to a generation request, in the order they are shown. */
const sections = [modelFields, hires, variation, refiner, controlnet, xyz];

export async function loadLists() {
  const [samplers, schedulers, models, options] = await Promise.allSettled([
    api('GET', '/sdapi/v1/samplers'), api('GET', '/sdapi/v1/schedulers'),
    api('GET', '/sdapi/v1/sd-models'), api('GET', '/sdapi/v1/options'),
  ]);
  const failures = [samplers, schedulers, models, options].filter((r) => r.status === 'rejected').map((r) => r.reason.message);
  if (failures.length) showError(failures.join(' '));

  const names = samplers.status === 'fulfilled' && Array.isArray(samplers.value) ? samplers.value.map((s) => s.name) : ['Euler a', 'Euler'];
  state.samplers = names.map((n) => [n, n]);
  fillSelect(els.sampler, state.samplers, names.includes('Euler a') ? 'Euler a' : names.includes('Euler') ? 'Euler' : names[0]);

  const schedules = schedulers.status === 'fulfilled' && Array.isArray(schedulers.value)
    ? schedulers.value.map((s) => [s.name, s.label || s.name]) : [['automatic', 'Automatic']];
  state.schedules = schedules;
  fillSelect(els.scheduler, schedules, schedules.some(([n]) => n === 'automatic') ? 'automatic' : schedules[0][0]);

  const list = models.status === 'fulfilled' && Array.isArray(models.value) ? models.value : [];
  state.models = list;
  const current = options.status === 'fulfilled' && options.value ? options.value.sd_model_checkpoint : null;
  const entries = list.map((m) => [m.title, m.model_name || m.title]);
  if (current && !entries.some(([t]) => t === current)) entries.unshift([current, current]);
  fillSelect(els.model, entries, current);
  els.model.disabled = entries.length < 2;
  els.modelStatus.textContent = entries.length < 2 ? 'the only model' : '';
  state.model = current;
  // The optional sections' own lists (upscalers, ControlNets, scripts): a missing one only hides its section.
  await Promise.all([...sections, extras].map((s) => s.load()));
  showModelFields(current);
}

/** The fields of the model <title>, from its sd-models entry (this server's extensions "prompts", "guidance",
 *  "samplers", "schedulers"): its prompt and guidance fields (model-fields.js), the samplers and schedules it takes. */
export function showModelFields(title) {
  const model = (state.models || []).find((m) => m.title === title);
  const only = (all, names) => (Array.isArray(names) ? all.filter(([n]) => names.includes(n)) : all);
  for (const [select, all, names, preferred] of [
    [els.sampler, state.samplers || [], model && model.samplers, ['Euler a', 'Euler']],
    [els.scheduler, state.schedules || [], model && model.schedulers, ['automatic']]]) {
    const entries = only(all, names);
    if (!entries.length) continue;
    // Added names the general lists lack (Forge's "Simple" for SD3), labelled as the server spells them.
    const missing = Array.isArray(names) ? names.filter((n) => !entries.some(([v]) => v === n)) : [];
    const options = entries.concat(missing.map((n) => [n, n.charAt(0).toUpperCase() + n.slice(1)]));
    const keep = options.some(([v]) => v === select.value) ? select.value
      : (preferred.find((p) => options.some(([v]) => v === p)) ?? options[0][0]);
    fillSelect(select, options, keep);
  }
  for (const section of sections) section.showFor(model);
}

export async function switchModel() {
  const title = els.model.value;
  els.model.disabled = true;
  els.modelStatus.textContent = 'loading…';
  clearError();
  try {
    await api('POST', '/sdapi/v1/options', { sd_model_checkpoint: title });
    state.model = title;
    els.modelStatus.textContent = 'loaded';
  } catch (e) {
    showError(e.message);
    els.modelStatus.textContent = 'not changed';
    if (state.model) els.model.value = state.model;
  } finally {
    showModelFields(state.model);
    els.model.disabled = false;
  }
}

/** The body of POST /jobs (A1111's txt2img/img2img fields plus "task"); throws what is missing, before sending. */
export function buildBody() {
  const task = mode();
  const body = {
    task,
    prompt: els.prompt.value,
    negative_prompt: els.negative.value,
    sampler_name: els.sampler.value || undefined,
    scheduler: els.scheduler.value || undefined,
    steps: numberOf(els.steps),
    cfg_scale: numberOf(els.cfg),
    width: numberOf(els.width),
    height: numberOf(els.height),
    seed: numberOf(els.seed),
    n_iter: numberOf(els.nIter),
    batch_size: numberOf(els.batchSize),
  };
  if (task === 'img2img') {
    if (!state.hasImage) throw new Error('Image to image needs an init image: choose one under "Init image" first.');
    body.init_images = [els.initCanvas.toDataURL('image/png')];
    body.denoising_strength = numberOf(els.strength);
    if (maskPainted()) {
      body.mask = maskPng();
      body.mask_blur = numberOf(els.maskBlur);
      body.inpainting_mask_invert = 0;
    }
  }
  // The model's own fields (model-fields.js: T5 prompts, distilled guidance) and the optional sections add theirs.
  for (const section of sections) section.addTo(body, task);
  return body;
}

/** A result's infotext fields (parsed) back into the optional sections. */
export function reuseSections(fields) {
  for (const section of sections) section.reuse(fields);
}
