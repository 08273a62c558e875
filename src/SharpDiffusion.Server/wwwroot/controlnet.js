// ControlNet units as sd-webui-controlnet's API takes them (alwayson_scripts.controlnet.args): each unit an image, a
// preprocessor ("module", from /controlnet/module_list, with its sliders), a model (from /controlnet/model_list),
// weight, guidance start/end, pixel perfect and resize mode. "Preview the map" shows what the preprocessor makes of
// the image (POST /controlnet/detect). The section is hidden when the server has no ControlNets.
import { api, optional } from './api.js';
import { $, fillSelect, readAsDataUrl, setAvailable } from './dom.js';
import { clearError, showError } from './status.js';

const c = { section: $('controlnet'), units: $('controlnet-units'), add: $('controlnet-add') };

/** The server's lists: model titles, module names and each module's sliders ({name, value, min, max, step}). */
const lists = { models: [], modules: ['none'], detail: {} };
/** One entry per unit on the page: its elements and its image as a data: URL (null until chosen). */
const units = [];
let made = 0;

// The extension's resize modes this server runs ("Resize and Fill" is refused there), and its control modes (its
// ControlMode enum: 0 balanced, 1 soft injection, 2 cfg injection: what "guess mode" became in the extension).
const RESIZE_MODES = [['Crop and Resize', 'Crop and resize'], ['Just Resize', 'Just resize']];
const CONTROL_MODES = ['Balanced', 'My prompt is more important', 'ControlNet is more important'].map((m) => [m, m]);

export async function load() {
  const [models, modules] = await Promise.all([optional('/controlnet/model_list', {}), optional('/controlnet/module_list', {})]);
  lists.models = Array.isArray(models.model_list) ? models.model_list : [];
  if (Array.isArray(modules.module_list) && modules.module_list.length) lists.modules = modules.module_list;
  lists.detail = modules.module_detail || {};
  setAvailable(c.section, lists.models.length > 0);
  if (lists.models.length && !units.length) addUnit();
}

export function showFor() { }

function field(label, input, hint) {
  const div = document.createElement('div');
  div.className = 'field';
  const l = document.createElement('label');
  l.htmlFor = input.id;
  l.textContent = label;
  div.append(l, input);
  if (hint) {
    const p = document.createElement('p');
    p.className = 'hint';
    p.textContent = hint;
    div.append(p);
  }
  return div;
}

function input(id, type, attrs = {}) {
  const el = document.createElement(type === 'select' ? 'select' : 'input');
  el.id = id;
  if (type !== 'select') el.type = type;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function checkbox(id, label, checked) {
  const div = document.createElement('div');
  div.className = 'field checkbox';
  const l = document.createElement('label');
  const box = input(id, 'checkbox');
  box.checked = checked;
  l.append(box, ` ${label}`);
  div.append(l);
  return [div, box];
}

/** A new unit (enabled, canny when the server has it, the first model) at the end of the list. */
function addUnit() {
  const n = ++made;
  const id = (name) => `cn-${n}-${name}`;
  const fieldset = document.createElement('fieldset');
  fieldset.className = 'cn-unit';
  fieldset.id = id('unit');
  const legend = document.createElement('legend');
  fieldset.append(legend);
  const [enabledField, enabled] = checkbox(id('enabled'), 'Enabled', true);
  const image = input(id('image'), 'file', { accept: 'image/*' });
  const thumbs = document.createElement('div');
  thumbs.className = 'cn-thumbs';
  const picture = document.createElement('img');
  picture.id = id('picture');
  picture.hidden = true;
  const map = document.createElement('img');
  map.id = id('map');
  map.hidden = true;
  thumbs.append(picture, map);
  const module = input(id('module'), 'select');
  fillSelect(module, lists.modules.map((m) => [m, m]), lists.modules.includes('canny') ? 'canny' : lists.modules[0]);
  const sliders = document.createElement('div');
  sliders.className = 'grid wide';
  const preview = document.createElement('button');
  preview.type = 'button';
  preview.id = id('preview');
  preview.textContent = 'Preview the map';
  const model = input(id('model'), 'select');
  fillSelect(model, lists.models.map((m) => [m, m]), lists.models[0]);
  const weight = input(id('weight'), 'number', { min: '0', max: '2', step: '0.05', value: '1', inputmode: 'decimal' });
  const start = input(id('start'), 'number', { min: '0', max: '1', step: '0.05', value: '0', inputmode: 'decimal' });
  const end = input(id('end'), 'number', { min: '0', max: '1', step: '0.05', value: '1', inputmode: 'decimal' });
  const [pixelField, pixelPerfect] = checkbox(id('pixel-perfect'), 'Pixel perfect', false);
  const resize = input(id('resize'), 'select');
  fillSelect(resize, RESIZE_MODES, RESIZE_MODES[0][0]);
  const controlMode = input(id('control-mode'), 'select');
  fillSelect(controlMode, CONTROL_MODES, CONTROL_MODES[0][0]);
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'cn-remove';
  remove.textContent = 'Remove this unit';

  const grid = document.createElement('div');
  grid.className = 'grid';
  const imageField = field('Control image', image);
  imageField.classList.add('wide');
  const row = (...children) => {
    const div = document.createElement('div');
    div.className = 'inline wide';
    div.append(...children);
    return div;
  };
  grid.append(enabledField, pixelField, imageField, thumbs, field('Preprocessor', module), field('ControlNet model', model), sliders,
    row(preview), field('Control weight', weight), field('Resize mode', resize),
    field('Guidance start', start, 'Fraction of the steps before the unit acts.'), field('Guidance end', end, 'Fraction after which it stops.'),
    field('Control mode', controlMode), row(remove));
  thumbs.classList.add('wide');
  fieldset.append(grid);
  c.units.append(fieldset);

  const unit = { n, fieldset, legend, enabled, image, picture, map, module, sliders, model, weight, start, end, pixelPerfect, resize, controlMode, data: null };
  units.push(unit);
  showSliders(unit);
  numberUnits();
  module.addEventListener('change', () => { showSliders(unit); unit.map.hidden = true; });
  image.addEventListener('change', () => chooseImage(unit));
  preview.addEventListener('click', () => detect(unit));
  remove.addEventListener('click', () => {
    units.splice(units.indexOf(unit), 1);
    fieldset.remove();
    numberUnits();
    c.add.focus();
  });
  return unit;
}

/** Units are numbered from 0 as the extension's infotext numbers them ("ControlNet 0: ..."). */
function numberUnits() {
  units.forEach((u, i) => {
    u.legend.textContent = `ControlNet unit ${i}`;
    u.fieldset.querySelector('.cn-remove').setAttribute('aria-label', `Remove ControlNet unit ${i}`);
  });
}

/** The module's sliders from module_list's module_detail: a "...Resolution" one is processor_res, the others in
 *  order threshold_a and threshold_b (the extension's order). */
function showSliders(unit) {
  const sliders = (lists.detail[unit.module.value] || {}).sliders || [];
  const thresholds = ['threshold_a', 'threshold_b'];
  const fields = [];
  sliders.forEach((s, i) => {
    const key = /resolution/i.test(s.name) ? 'processor_res' : thresholds.shift();
    if (!key) return;
    const el = input(`cn-${unit.n}-slider-${i}`, 'number', { min: String(s.min), max: String(s.max), step: String(s.step), value: String(s.value), inputmode: 'decimal' });
    el.dataset.key = key;
    fields.push(field(s.name, el));
  });
  unit.sliders.replaceChildren(...fields);
}

async function chooseImage(unit) {
  const file = unit.image.files && unit.image.files[0];
  unit.map.hidden = true;
  if (!file) return;
  clearError();
  try {
    unit.data = await readAsDataUrl(file);
    unit.picture.src = unit.data;
    unit.picture.alt = `Control image of ControlNet unit ${units.indexOf(unit)}: ${file.name}`;
    unit.picture.hidden = false;
  } catch (e) { showError(e.message); }
}

function sliderValues(unit) {
  const values = {};
  for (const el of unit.sliders.querySelectorAll('input')) {
    const v = Number(el.value);
    if (el.value.trim() !== '' && Number.isFinite(v)) values[el.dataset.key] = v;
  }
  return values;
}

/** POST /controlnet/detect with the unit's image, module and sliders; the map is shown beside the image. */
async function detect(unit) {
  clearError();
  const i = units.indexOf(unit);
  if (!unit.data) { showError(`ControlNet unit ${i} has no control image: choose one first.`); return; }
  const s = sliderValues(unit);
  try {
    const answer = await api('POST', '/controlnet/detect', {
      controlnet_module: unit.module.value, controlnet_input_images: [unit.data],
      controlnet_processor_res: s.processor_res ?? -1, controlnet_threshold_a: s.threshold_a ?? -1, controlnet_threshold_b: s.threshold_b ?? -1,
    });
    const b64 = answer && Array.isArray(answer.images) ? answer.images[0] : null;
    if (!b64) throw new Error('The server sent no map.');
    unit.map.src = b64.startsWith('data:') ? b64 : `data:image/png;base64,${b64}`;
    unit.map.alt = `The ${unit.module.value} map of ControlNet unit ${i}`;
    unit.map.hidden = false;
  } catch (e) { showError(e.message); }
}

export function addTo(body) {
  if (c.section.dataset.unavailable === 'true' || !units.some((u) => u.enabled.checked)) return;
  const args = units.map((u, i) => {
    if (u.enabled.checked && !u.data) throw new Error(`ControlNet unit ${i} needs a control image: choose one, or untick "Enabled".`);
    const number = (el) => (el.value.trim() === '' ? undefined : Number(el.value));
    return {
      enabled: u.enabled.checked, image: u.enabled.checked ? u.data : undefined, module: u.module.value, model: u.model.value,
      weight: number(u.weight), guidance_start: number(u.start), guidance_end: number(u.end),
      pixel_perfect: u.pixelPerfect.checked, resize_mode: u.resize.value, control_mode: u.controlMode.value, ...sliderValues(u),
    };
  });
  body.alwayson_scripts = { ...(body.alwayson_scripts || {}), controlnet: { args } };
}

/** Infotext "ControlNet 0: "Module: canny, Model: ..., Weight: 1.0, ..."": the units' settings (the images stay). */
export function reuse(f) {
  units.forEach((u, i) => {
    const text = f[`ControlNet ${i}`];
    if (!text) return;
    const pairs = Object.fromEntries([...String(text).matchAll(/([\w ]+): ([^,]*)/g)].map((m) => [m[1].trim(), m[2].trim()]));
    if (pairs.Module && [...u.module.options].some((o) => o.value === pairs.Module)) { u.module.value = pairs.Module; showSliders(u); }
    if (pairs.Model && [...u.model.options].some((o) => o.value === pairs.Model)) u.model.value = pairs.Model;
    if (pairs.Weight) u.weight.value = String(Number(pairs.Weight));
    if (pairs['Guidance Start']) u.start.value = String(Number(pairs['Guidance Start']));
    if (pairs['Guidance End']) u.end.value = String(Number(pairs['Guidance End']));
    if (pairs['Pixel Perfect']) u.pixelPerfect.checked = pairs['Pixel Perfect'] === 'True';
    if (pairs['Control Mode'] && CONTROL_MODES.some(([m]) => m === pairs['Control Mode'])) u.controlMode.value = pairs['Control Mode'];
    if (pairs['Resize Mode'] && RESIZE_MODES.some(([m]) => m === pairs['Resize Mode'])) u.resize.value = pairs['Resize Mode'];
  });
}

c.add.addEventListener('click', () => addUnit().enabled.focus());
