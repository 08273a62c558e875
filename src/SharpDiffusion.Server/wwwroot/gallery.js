// The results: each image with its infotext, seed, a download, "Reuse parameters" (the infotext back into the form)
// and "Send to img2img".
import { button, crisp, els, form, hasOption, showMode, state } from './dom.js';
import { reuseSections } from './generate-form.js';
import { loadInitImage } from './inpaint.js';
import { setStatus, showError, showPreview, showWarnings } from './status.js';

/** kind: "image" (a generation's), or "upscaled" (the Extras tab's: no seed, no reuse). */
export function addResults(result, kind = 'image') {
  let info = {};
  try { info = typeof result.info === 'string' ? JSON.parse(result.info) : (result.info || {}); } catch { info = {}; }
  const images = Array.isArray(result.images) ? result.images : [];
  const infotexts = Array.isArray(info.infotexts) ? info.infotexts : [];
  const seeds = Array.isArray(info.all_seeds) ? info.all_seeds : [];
  showWarnings(Array.isArray(info.warnings) ? info.warnings : []);
  // A1111's scripts (the X/Y/Z plot) put their grids first: index_of_first_image of them; seeds count the images only.
  const grids = Number.isInteger(info.index_of_first_image) && info.index_of_first_image > 0 ? info.index_of_first_image : 0;
  const items = images.map((b64, i) => resultItem(
    b64.startsWith('data:') ? b64 : `data:image/png;base64,${b64}`,
    infotexts[i] || '',
    i < grids ? (seeds[0] ?? '') : seeds[i - grids] ?? (Number.isFinite(info.seed) ? info.seed + i - grids : ''),
    (info.all_prompts && info.all_prompts[Math.max(0, i - grids)]) || info.prompt || '',
    i < grids ? 'grid' : kind));
  els.gallery.prepend(...items);
  els.galleryEmpty.hidden = els.gallery.children.length > 0;
  if (seeds.length) {
    state.lastSeed = seeds[0];
    els.seedLast.disabled = false;
  }
  if (items.length) showPreview(items[0].querySelector('img').src, `Result (seed ${seeds[0] ?? '?'})`);
  return items.length;
}

/** kind: "image", "grid" (an X/Y/Z plot's, labelled so) or "upscaled" (from the Extras tab: no parameters to reuse). */
function resultItem(src, infotext, seed, prompt, kind) {
  const n = ++state.results;
  const grid = kind === 'grid';
  const li = document.createElement('li');
  li.className = `result ${kind}-result`;
  li.dataset.seed = String(seed);

  const figure = document.createElement('figure');
  const img = document.createElement('img');
  img.src = src;
  const what = { grid: `Grid ${n}`, upscaled: `Upscaled image ${n}` }[kind] ?? `Result ${n}`;
  img.alt = kind === 'upscaled' ? what : `${what}${prompt ? `: ${prompt.slice(0, 120)}` : ''} (seed ${seed})`;
  img.addEventListener('load', () => img.classList.toggle('pixelated', crisp(img.naturalWidth)));
  if (kind !== 'upscaled') {
    img.title = 'Click to reuse these parameters';
    img.addEventListener('click', () => reuse(infotext, seed));
  }
  const caption = document.createElement('figcaption');
  const pre = document.createElement('pre');
  pre.className = 'infotext';
  pre.textContent = infotext;
  if (grid) {
    const label = document.createElement('p');
    label.className = 'grid-label';
    label.textContent = 'X/Y/Z plot grid';
    caption.append(label);
  }
  caption.append(pre);
  figure.append(img, caption);

  const actions = document.createElement('div');
  actions.className = 'item-actions';
  const reuseButton = button('Reuse parameters', 'reuse', () => reuse(infotext, seed));
  reuseButton.setAttribute('aria-label', `Reuse the parameters of result ${n} (seed ${seed})`);
  const sendButton = button('Send to img2img', 'send', () => sendToImg2img(src));
  sendButton.setAttribute('aria-label', `Use result ${n} as the init image`);
  const download = document.createElement('a');
  download.className = 'button download';
  download.href = src;
  const file = { grid: `sharpdiffusion-grid-${seed}.png`, upscaled: `sharpdiffusion-upscaled-${n}.png` }[kind] ?? `sharpdiffusion-${seed}.png`;
  download.download = file;
  download.textContent = 'Download';
  download.setAttribute('aria-label', `Download result ${n} (${file})`);
  if (kind === 'upscaled') actions.append(sendButton, download);
  else actions.append(reuseButton, sendButton, download);

  li.append(figure, actions);
  return li;
}

/** AUTOMATIC1111's infotext → fields (as its parse_generation_parameters and the server's InfoText.Parse). */
export function parseInfotext(text) {
  const lines = String(text).trim().split('\n').map((l) => l.trim());
  const pairPattern = /\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g;
  const last = lines.length ? lines[lines.length - 1] : '';
  let pairs = [...last.matchAll(pairPattern)];
  if (pairs.length >= 3) lines.pop(); else pairs = [];
  const prompt = [], negative = [];
  let inNegative = false;
  for (const line of lines) {
    if (line.startsWith('Negative prompt:')) {
      inNegative = true;
      negative.push(line.slice('Negative prompt:'.length).trim());
    } else (inNegative ? negative : prompt).push(line);
  }
  const fields = { Prompt: prompt.join('\n'), 'Negative prompt': negative.join('\n') };
  for (const m of pairs) {
    let value = m[2].trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      try { value = JSON.parse(value); } catch { /* keep it quoted */ }
    }
    fields[m[1].trim()] = value;
  }
  return fields;
}

function reuse(infotext, seed) {
  const f = parseInfotext(infotext);
  els.prompt.value = f.Prompt ?? '';
  els.negative.value = f['Negative prompt'] ?? '';
  if (f.Steps) els.steps.value = f.Steps;
  if (f['CFG scale']) els.cfg.value = f['CFG scale'];
  els.seed.value = f.Seed ?? seed;
  if (f.Sampler) {
    let sampler = f.Sampler, karras = false;
    if (!hasOption(els.sampler, sampler) && sampler.endsWith(' Karras')) {
      sampler = sampler.slice(0, -' Karras'.length);
      karras = true;
    }
    if (hasOption(els.sampler, sampler)) els.sampler.value = sampler;
    const schedule = f['Schedule type'] ? f['Schedule type'].toLowerCase() : karras ? 'karras' : 'automatic';
    const match = [...els.scheduler.options].find((o) => o.value.toLowerCase() === schedule || o.textContent.toLowerCase() === schedule);
    if (match) els.scheduler.value = match.value;
  }
  const size = /^(\d+)x(\d+)$/.exec(f.Size || '');
  if (size) {
    els.width.value = size[1];
    els.height.value = size[2];
  }
  if (f['Denoising strength']) els.strength.value = f['Denoising strength'];
  if (f['Mask blur']) els.maskBlur.value = f['Mask blur'];
  reuseSections(f);
  setStatus(`Parameters of the image with seed ${els.seed.value} are back in the form.`);
  els.prompt.focus();
  els.prompt.scrollIntoView({ block: 'nearest' });
}

async function sendToImg2img(src) {
  form.elements.mode.value = 'img2img';
  showMode();
  try {
    await loadInitImage(src);
    setStatus('The result is now the init image.');
    els.mask.focus();
  } catch (e) { showError(e.message); }
}
