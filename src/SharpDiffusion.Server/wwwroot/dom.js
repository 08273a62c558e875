// The page's elements and its one shared state object; small DOM helpers every module uses.

export const $ = (id) => document.getElementById(id);

export const form = $('form');

export const els = {
  model: $('model'), modelStatus: $('model-status'),
  prompt: $('prompt'), negative: $('negative-prompt'),
  t5: $('t5-fields'), prompt3: $('prompt-3'), negative3: $('negative-prompt-3'),
  generate: $('generate'), cancel: $('cancel'),
  sampler: $('sampler'), scheduler: $('scheduler'),
  steps: $('steps'), cfg: $('cfg-scale'), width: $('width'), height: $('height'),
  seed: $('seed'), seedRandom: $('seed-random'), seedLast: $('seed-last'),
  nIter: $('n-iter'), batchSize: $('batch-size'),
  img2img: $('img2img'), initImage: $('init-image'), wrap: $('canvas-wrap'),
  initCanvas: $('init-canvas'), mask: $('mask-canvas'), cursor: $('brush-cursor'),
  brush: $('brush-size'), brushValue: $('brush-size-value'), eraser: $('eraser'),
  maskClear: $('mask-clear'), maskInvert: $('mask-invert'),
  strength: $('denoising-strength'), maskBlur: $('mask-blur'),
  job: $('job'), toResults: $('to-results'), output: $('output'), progress: $('progress'), status: $('status'), announce: $('announce'), error: $('error'), warnings: $('warnings'),
  previewFigure: $('preview-figure'), preview: $('preview'), previewCaption: $('preview-caption'),
  gallery: $('gallery'), galleryEmpty: $('gallery-empty'),
};

/** The job this page is following (one at a time), its event stream, what the last result was, and the server's
 *  lists (samplers, schedules, models) once loaded. */
export const state = { job: null, source: null, pollTimer: 0, lastSeed: null, results: 0, hasImage: false };

/** "txt2img", "img2img" or "extras" (the upscale tab), from the Mode radios. */
export function mode() {
  const value = form.elements.mode.value;
  return value === 'img2img' || value === 'extras' ? value : 'txt2img';
}

/** Shows what belongs to the chosen mode: each element with data-modes="txt2img img2img ..." is hidden in the
 *  other modes, and always while a section marks it data-unavailable (the server lacks what it needs). */
export function showMode() {
  const current = mode();
  for (const el of document.querySelectorAll('[data-modes]'))
    el.hidden = el.dataset.unavailable === 'true' || !el.dataset.modes.split(' ').includes(current);
}

/** A section the server cannot serve (no ControlNets, no refiner, ...) is hidden in every mode. */
export function setAvailable(el, available) {
  el.dataset.unavailable = String(!available);
  showMode();
}

/** A number field as JSON: empty = left out (the server's default); text that is no number goes as it is, so the
 *  server says what is wrong with it. */
export function numberOf(input) {
  const raw = input.value.trim();
  if (raw === '') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : raw;
}

/** entries: [value, label] pairs; selected kept when it is one of them. */
export function fillSelect(select, entries, selected) {
  select.replaceChildren(...entries.map(([value, label]) => {
    const option = document.createElement('option');
    option.value = value;
    option.textContent = label;
    return option;
  }));
  if (selected !== null && selected !== undefined) select.value = selected;
}

export function hasOption(select, value) { return [...select.options].some((o) => o.value === value); }

export function button(text, className, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

/** Small images are shown enlarged: sharp pixels, except for a tiny live preview (a latent-sized mosaic otherwise). */
export function crisp(width) { return width >= 48 && width <= 256; }

/** A chosen file as a data: URL (what the server's image fields take). */
export function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new Error(`Cannot read ${file.name}: ${reader.error ? reader.error.message : 'unknown error'}.`));
    reader.readAsDataURL(file);
  });
}
