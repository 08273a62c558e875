// SharpDiffusion's page: plain JS, no framework, no build step, nothing loaded from anywhere but this server.
// It talks to the server's own API: /sdapi/v1/{samplers,schedulers,sd-models,options} for the form, POST /jobs to
// start a generation, GET /jobs/{id}/events (Server-Sent Events) for progress and live previews, DELETE /jobs/{id}
// to cancel.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const form = $('form');
  const els = {
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

  /** The job this page is following (one at a time), its event stream, and what the last result was. */
  const state = { job: null, source: null, pollTimer: 0, lastSeed: null, results: 0, hasImage: false };

  // ---------------------------------------------------------------- server calls

  /** fetch + JSON; a non-2xx answer throws an Error whose message is the server's own (its "detail"). */
  async function api(method, url, body) {
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: body === undefined ? { Accept: 'application/json' } : { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new Error(`Cannot reach the server (${e.message}).`);
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) {
      const error = new Error(errorMessage(response, data, text));
      error.status = response.status;
      throw error;
    }
    return data;
  }

  /** AUTOMATIC1111's error body {error, detail, errors}: detail is a string or FastAPI's list of {loc, msg, type}. */
  function errorMessage(response, data, text) {
    let message = '';
    if (data && typeof data === 'object') {
      if (Array.isArray(data.detail)) {
        message = data.detail.map((d) => {
          const loc = Array.isArray(d.loc) ? d.loc.filter((x) => x !== 'body').join('.') : '';
          return loc ? `${loc}: ${d.msg}` : String(d.msg);
        }).join('; ');
      } else if (typeof data.detail === 'string') message = data.detail;
      else if (data.error && typeof data.error === 'object' && data.error.message) message = data.error.message;
      else if (typeof data.errors === 'string') message = data.errors;
      else if (typeof data.error === 'string') message = data.error;
    }
    if (!message) message = (text || response.statusText || 'no details').slice(0, 400);
    const retry = response.headers.get('Retry-After');
    if (response.status === 503 && retry) message += ` Try again in ${retry} s.`;
    return `The server answered ${response.status}: ${message}`;
  }

  // ---------------------------------------------------------------- messages

  function showError(message) {
    els.error.textContent = message;
    els.error.hidden = false;
  }

  function clearError() {
    els.error.textContent = '';
    els.error.hidden = true;
  }

  function showWarnings(list) {
    els.warnings.replaceChildren(...list.map((w) => {
      const li = document.createElement('li');
      li.textContent = w;
      return li;
    }));
    els.warnings.hidden = list.length === 0;
  }

  function setStatus(text) { els.status.textContent = text; }

  /** The job's state, on #job for CSS and tests; a change of state (not every step) is spoken by screen readers. */
  function setState(name) {
    if (els.job.dataset.state === name) return;
    els.job.dataset.state = name;
    const spoken = { queued: 'Queued.', running: 'Generating.', cancelled: 'Cancelled.', failed: 'Failed.' }[name];
    if (spoken) els.announce.textContent = spoken;
  }

  /** value in 0..1, or null for "not known yet" (an indeterminate bar). */
  function setProgress(value, text) {
    const bar = els.progress;
    if (value === null) {
      bar.removeAttribute('value');
      bar.removeAttribute('aria-valuenow');
    } else {
      const v = Math.min(1, Math.max(0, value));
      bar.setAttribute('value', String(v));
      bar.setAttribute('aria-valuenow', String(Math.round(v * 100)));
    }
    if (text) bar.setAttribute('aria-valuetext', text); else bar.removeAttribute('aria-valuetext');
  }

  function seconds(s) {
    if (!Number.isFinite(s) || s < 0) return '';
    if (s < 1) return 'under 1 s';
    if (s < 60) return `${Math.round(s)} s`;
    const m = Math.floor(s / 60);
    return `${m} min ${Math.round(s - m * 60)} s`;
  }

  // ---------------------------------------------------------------- lists from the server

  async function loadLists() {
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
    showModelFields(current);
  }

  /** The fields of the model <title>, from its sd-models entry (this server's extensions "prompts", "samplers",
   *  "schedulers"): the T5 prompts only for a model with a T5 encoder (SD3), the samplers and schedules it takes. */
  function showModelFields(title) {
    const model = (state.models || []).find((m) => m.title === title);
    els.t5.hidden = !(model && Array.isArray(model.prompts) && model.prompts.includes('prompt_3'));
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
  }

  function fillSelect(select, entries, selected) {
    select.replaceChildren(...entries.map(([value, label]) => {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      return option;
    }));
    if (selected !== null && selected !== undefined) select.value = selected;
  }

  async function switchModel() {
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

  // ---------------------------------------------------------------- the request

  function mode() { return form.elements.mode.value === 'img2img' ? 'img2img' : 'txt2img'; }

  /** A number field as JSON: empty = left out (the server's default); text that is no number goes as it is, so the
   *  server says what is wrong with it. */
  function numberOf(input) {
    const raw = input.value.trim();
    if (raw === '') return undefined;
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw;
  }

  function buildBody() {
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
    // diffusers' T5 prompts, sent only to a model that reads them (others refuse them) and only when filled in.
    if (!els.t5.hidden) {
      if (els.prompt3.value.trim()) body.prompt_3 = els.prompt3.value;
      if (els.negative3.value.trim()) body.negative_prompt_3 = els.negative3.value;
    }
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
    return body;
  }

  // ---------------------------------------------------------------- a job: start, follow, cancel

  function setBusy(busy) {
    els.generate.setAttribute('aria-disabled', String(busy));
    els.generate.classList.toggle('busy', busy);
    if (!busy && document.activeElement === els.cancel) els.generate.focus();
    els.cancel.disabled = !busy;
  }

  async function generate() {
    if (state.job || els.generate.classList.contains('busy')) return;
    clearError();
    showWarnings([]);
    let body;
    try { body = buildBody(); } catch (e) { showError(e.message); return; }
    setBusy(true);
    setState('submitting');
    setStatus('Sending the request…');
    setProgress(null);
    els.previewFigure.hidden = true;
    els.toResults.hidden = true;
    let job;
    try {
      job = await api('POST', '/jobs', body);
    } catch (e) {
      setBusy(false);
      setState('failed');
      setProgress(0);
      setStatus('Not started.');
      showError(e.message);
      return;
    }
    state.job = job.id;
    remember(job.id);
    state.previews = 0;
    els.job.dataset.previews = '0';
    update(job);
    follow(job.id);
  }

  function follow(id) {
    const source = new EventSource(`/jobs/${encodeURIComponent(id)}/events`);
    state.source = source;
    source.addEventListener('progress', (e) => update(JSON.parse(e.data)));
    source.addEventListener('done', (e) => {
      source.close();
      finish(JSON.parse(e.data));
    });
    source.addEventListener('error', () => {
      // A dropped connection is retried by the browser itself; a refused one (CLOSED) falls back to polling.
      if (source.readyState === EventSource.CLOSED && state.job === id) poll(id);
    });
  }

  async function poll(id) {
    if (state.job !== id) return;
    try {
      const d = await api('GET', `/jobs/${encodeURIComponent(id)}`);
      if (['completed', 'failed', 'cancelled'].includes(d.state)) { finish(d); return; }
      update(d);
      state.pollTimer = setTimeout(() => poll(id), 1000);
    } catch (e) {
      stop();
      setState('failed');
      setProgress(0);
      setStatus('Lost track of the job.');
      showError(e.message);
    }
  }

  /** The running job's id survives a reload of the page (sessionStorage: this tab only), so its result is not lost. */
  const JOB_KEY = 'sharpdiffusion.job';
  function remember(id) {
    try { if (id) sessionStorage.setItem(JOB_KEY, id); else sessionStorage.removeItem(JOB_KEY); } catch { /* storage off */ }
  }

  async function resume() {
    let id = null;
    try { id = sessionStorage.getItem(JOB_KEY); } catch { return; }
    if (!id || state.job) return;
    let d;
    try { d = await api('GET', `/jobs/${encodeURIComponent(id)}`); } catch { remember(null); return; }
    state.job = id;
    setBusy(true);
    if (['completed', 'failed', 'cancelled'].includes(d.state)) finish(d);
    else {
      update(d);
      follow(id);
    }
  }

  function stop() {
    remember(null);
    if (state.source) state.source.close();
    clearTimeout(state.pollTimer);
    state.source = null;
    state.job = null;
    setBusy(false);
  }

  /** One progress event (or the 202 answer): state, queue position, step, ETA and the live preview. */
  function update(d) {
    if (d.id !== state.job) return;
    setState(d.state);
    if (d.state === 'queued') {
      const ahead = d.queue_position;
      const text = ahead ? `Queued: position ${ahead} in the queue (${ahead === 1 ? 'next after the running job' : `${ahead - 1} more before it`}).` : 'Queued.';
      setProgress(null, text);
      setStatus(text);
    } else if (d.state === 'running') {
      const parts = [];
      if (d.image_count > 1) parts.push(`Image ${d.image_index + 1}/${d.image_count}`);
      if (d.stage === 'loading') parts.push('loading the model');
      else if (d.stage === 'encoding') parts.push('encoding the prompt');
      else if (d.stage === 'decoding') parts.push('decoding');
      if (d.steps > 0 && d.stage !== 'loading') parts.push(`Step ${d.step}/${d.steps}`);
      const fraction = Number(d.progress) || 0;
      parts.push(`${Math.floor(fraction * 100)}%`);
      if (fraction > 0 && d.eta_relative > 0) parts.push(`ETA ${seconds(d.eta_relative)}`);
      const text = parts.join(' · ');
      setProgress(fraction, text);
      setStatus(text);
    }
    if (d.preview) {
      state.previews = (state.previews || 0) + 1;
      els.job.dataset.previews = String(state.previews);
      showPreview(d.preview, 'Live preview');
    }
  }

  function showPreview(src, caption) {
    els.preview.src = src;
    els.previewCaption.textContent = caption;
    els.previewFigure.hidden = false;
  }

  function finish(d) {
    if (d.id !== state.job) return;
    if (d.preview) update(d);
    stop();
    setState(d.state);
    if (d.state === 'completed' && d.result) {
      const count = addResults(d.result);
      setProgress(1, 'Done');
      setStatus(`Done: ${count} image${count === 1 ? '' : 's'} in ${seconds(d.elapsed) || 'no time'}.`);
      els.toResults.hidden = count === 0;
      els.announce.textContent = els.status.textContent;
    } else if (d.state === 'cancelled') {
      setProgress(0, 'Cancelled');
      setStatus('Cancelled.');
    } else {
      setProgress(0, 'Failed');
      setStatus('Failed.');
      showError(`The generation failed: ${d.error || 'no reason given'}`);
    }
  }

  async function cancel() {
    const id = state.job;
    if (!id) return;
    els.cancel.disabled = true;
    setStatus('Cancelling…');
    try {
      await api('DELETE', `/jobs/${encodeURIComponent(id)}`);
      // The event stream reports "cancelled" (at once if queued, at the next step if running).
    } catch (e) {
      showError(e.message);
      els.cancel.disabled = false;
    }
  }

  // ---------------------------------------------------------------- results

  function addResults(result) {
    let info = {};
    try { info = typeof result.info === 'string' ? JSON.parse(result.info) : (result.info || {}); } catch { info = {}; }
    const images = Array.isArray(result.images) ? result.images : [];
    const infotexts = Array.isArray(info.infotexts) ? info.infotexts : [];
    const seeds = Array.isArray(info.all_seeds) ? info.all_seeds : [];
    showWarnings(Array.isArray(info.warnings) ? info.warnings : []);
    const items = images.map((b64, i) => resultItem(
      b64.startsWith('data:') ? b64 : `data:image/png;base64,${b64}`,
      infotexts[i] || '',
      seeds[i] ?? (Number.isFinite(info.seed) ? info.seed + i : ''),
      (info.all_prompts && info.all_prompts[i]) || info.prompt || ''));
    els.gallery.prepend(...items);
    els.galleryEmpty.hidden = els.gallery.children.length > 0;
    if (seeds.length) {
      state.lastSeed = seeds[0];
      els.seedLast.disabled = false;
    }
    if (items.length) showPreview(items[0].querySelector('img').src, `Result (seed ${seeds[0] ?? '?'})`);
    return items.length;
  }

  function resultItem(src, infotext, seed, prompt) {
    const n = ++state.results;
    const li = document.createElement('li');
    li.className = 'result';
    li.dataset.seed = String(seed);

    const figure = document.createElement('figure');
    const img = document.createElement('img');
    img.src = src;
    img.alt = `Result ${n}${prompt ? `: ${prompt.slice(0, 120)}` : ''} (seed ${seed})`;
    img.title = 'Click to reuse these parameters';
    img.addEventListener('load', () => img.classList.toggle('pixelated', crisp(img.naturalWidth)));
    img.addEventListener('click', () => reuse(infotext, seed));
    const caption = document.createElement('figcaption');
    const pre = document.createElement('pre');
    pre.className = 'infotext';
    pre.textContent = infotext;
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
    download.download = `sharpdiffusion-${seed}.png`;
    download.textContent = 'Download';
    download.setAttribute('aria-label', `Download result ${n} (sharpdiffusion-${seed}.png)`);
    actions.append(reuseButton, sendButton, download);

    li.append(figure, actions);
    return li;
  }

  /** Small images are shown enlarged: sharp pixels, except for a tiny live preview (a latent-sized mosaic otherwise). */
  function crisp(width) { return width >= 48 && width <= 256; }

  function button(text, className, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = className;
    b.textContent = text;
    b.addEventListener('click', onClick);
    return b;
  }

  /** AUTOMATIC1111's infotext → fields (as its parse_generation_parameters and the server's InfoText.Parse). */
  function parseInfotext(text) {
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

  function hasOption(select, value) { return [...select.options].some((o) => o.value === value); }

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

  // ---------------------------------------------------------------- img2img: init image and mask

  const mctx = els.mask.getContext('2d', { willReadFrequently: true });
  const ictx = els.initCanvas.getContext('2d');
  const MASK_RGB = [255, 64, 128]; // shown half transparent over the image; sent as white (repaint) on black (keep)
  const brush = { painting: false, last: null, cursor: { x: 0, y: 0 }, pointerInside: false };

  function showMode() {
    const img2img = mode() === 'img2img';
    els.img2img.hidden = !img2img;
  }

  async function loadInitImage(source) {
    const url = source instanceof Blob ? URL.createObjectURL(source) : source;
    const img = new Image();
    try {
      await new Promise((resolve, reject) => {
        img.onload = resolve;
        img.onerror = () => reject(new Error('That file is not an image this browser can read (use PNG, JPEG or WebP).'));
        img.src = url;
      });
    } finally {
      if (source instanceof Blob) URL.revokeObjectURL(url);
    }
    const w = img.naturalWidth, h = img.naturalHeight;
    els.initCanvas.width = w;
    els.initCanvas.height = h;
    ictx.drawImage(img, 0, 0);
    els.mask.width = w; // also clears the mask
    els.mask.height = h;
    state.hasImage = true;
    els.wrap.classList.remove('empty');
    els.wrap.classList.toggle('pixelated', crisp(Math.max(w, h)));
    els.mask.setAttribute('aria-label', `Inpainting mask over the ${w}×${h} init image: paint with the mouse, or with the keyboard: arrow keys move the brush, Space paints, Shift+arrow paints while moving`);
    brush.cursor = { x: w / 2, y: h / 2 };
    placeCursor();
  }

  /** Canvas pixels per CSS pixel (the canvas is shown scaled to the column). */
  function scale() {
    const rect = els.mask.getBoundingClientRect();
    return rect.width > 0 ? els.mask.width / rect.width : 1;
  }

  function brushWidth() { return Math.max(1, Number(els.brush.value) * scale()); }

  function toCanvas(e) {
    const rect = els.mask.getBoundingClientRect();
    const s = els.mask.width / rect.width;
    return { x: (e.clientX - rect.left) * s, y: (e.clientY - rect.top) * (els.mask.height / rect.height) };
  }

  function paintStyle() {
    mctx.globalCompositeOperation = els.eraser.checked ? 'destination-out' : 'source-over';
    mctx.strokeStyle = mctx.fillStyle = `rgb(${MASK_RGB.join(',')})`;
    mctx.lineWidth = brushWidth();
    mctx.lineCap = 'round';
    mctx.lineJoin = 'round';
  }

  function dot(p) {
    paintStyle();
    mctx.beginPath();
    mctx.arc(p.x, p.y, brushWidth() / 2, 0, Math.PI * 2);
    mctx.fill();
  }

  function line(a, b) {
    paintStyle();
    mctx.beginPath();
    mctx.moveTo(a.x, a.y);
    mctx.lineTo(b.x, b.y);
    mctx.stroke();
  }

  function placeCursor() {
    const s = scale();
    const size = Number(els.brush.value);
    const c = els.cursor;
    c.style.width = c.style.height = `${size}px`;
    c.style.transform = `translate(${brush.cursor.x / s - size / 2}px, ${brush.cursor.y / s - size / 2}px)`;
    c.hidden = !state.hasImage || !(brush.pointerInside || document.activeElement === els.mask);
  }

  els.mask.addEventListener('pointerdown', (e) => {
    if (!state.hasImage || (e.pointerType === 'mouse' && e.button !== 0)) return;
    e.preventDefault();
    els.mask.focus({ preventScroll: true });
    els.mask.setPointerCapture(e.pointerId);
    brush.painting = true;
    brush.last = toCanvas(e);
    brush.cursor = brush.last;
    dot(brush.last);
    placeCursor();
  });
  els.mask.addEventListener('pointermove', (e) => {
    const p = toCanvas(e);
    brush.cursor = p;
    brush.pointerInside = true;
    if (brush.painting) {
      line(brush.last, p);
      brush.last = p;
    }
    placeCursor();
  });
  const endStroke = () => { brush.painting = false; brush.last = null; };
  els.mask.addEventListener('pointerup', endStroke);
  els.mask.addEventListener('pointercancel', endStroke);
  els.mask.addEventListener('pointerleave', () => { brush.pointerInside = false; placeCursor(); });
  els.mask.addEventListener('focus', placeCursor);
  els.mask.addEventListener('blur', placeCursor);
  els.mask.addEventListener('keydown', (e) => {
    if (!state.hasImage) return;
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[e.key]) {
      e.preventDefault();
      const stepCss = e.altKey ? 2 : Math.max(4, Number(els.brush.value) / 2);
      const s = scale();
      const from = { ...brush.cursor };
      const [dx, dy] = moves[e.key];
      brush.cursor = {
        x: Math.min(els.mask.width, Math.max(0, from.x + dx * stepCss * s)),
        y: Math.min(els.mask.height, Math.max(0, from.y + dy * stepCss * s)),
      };
      if (e.shiftKey) line(from, brush.cursor);
      placeCursor();
    } else if (e.key === ' ' || e.key === 'Enter') {
      e.preventDefault();
      dot(brush.cursor);
    }
  });

  function maskPixels() { return mctx.getImageData(0, 0, els.mask.width, els.mask.height); }

  function maskPainted() {
    const d = maskPixels().data;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
    return false;
  }

  /** The mask as the server takes it: a PNG, white = repaint, black = keep (the painted coverage as grey). */
  function maskPng() {
    const src = maskPixels();
    const out = document.createElement('canvas');
    out.width = src.width;
    out.height = src.height;
    const octx = out.getContext('2d');
    const img = octx.createImageData(src.width, src.height);
    for (let i = 0; i < src.data.length; i += 4) {
      const a = src.data[i + 3];
      img.data[i] = img.data[i + 1] = img.data[i + 2] = a;
      img.data[i + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    return out.toDataURL('image/png');
  }

  function invertMask() {
    const img = maskPixels();
    const d = img.data;
    for (let i = 0; i < d.length; i += 4) {
      [d[i], d[i + 1], d[i + 2]] = MASK_RGB;
      d[i + 3] = 255 - d[i + 3];
    }
    mctx.putImageData(img, 0, 0);
  }

  els.initImage.addEventListener('change', async () => {
    const file = els.initImage.files && els.initImage.files[0];
    if (!file) return;
    clearError();
    try { await loadInitImage(file); } catch (e) { showError(e.message); }
  });
  els.wrap.addEventListener('dragover', (e) => { e.preventDefault(); els.wrap.classList.add('dragging'); });
  els.wrap.addEventListener('dragleave', () => els.wrap.classList.remove('dragging'));
  els.wrap.addEventListener('drop', async (e) => {
    e.preventDefault();
    els.wrap.classList.remove('dragging');
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (!file) return;
    clearError();
    try { await loadInitImage(file); } catch (err) { showError(err.message); }
  });
  els.maskClear.addEventListener('click', () => mctx.clearRect(0, 0, els.mask.width, els.mask.height));
  els.maskInvert.addEventListener('click', invertMask);
  els.brush.addEventListener('input', () => {
    els.brushValue.textContent = els.brush.value;
    placeCursor();
  });
  window.addEventListener('resize', placeCursor);

  // ---------------------------------------------------------------- wiring

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    generate();
  });
  form.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      generate();
    }
  });
  els.cancel.addEventListener('click', cancel);
  els.seedRandom.addEventListener('click', () => { els.seed.value = '-1'; });
  els.seedLast.addEventListener('click', () => { if (state.lastSeed !== null) els.seed.value = String(state.lastSeed); });
  els.model.addEventListener('change', switchModel);
  for (const radio of form.elements.mode) radio.addEventListener('change', showMode);
  els.preview.addEventListener('load', () => els.preview.classList.toggle('pixelated', crisp(els.preview.naturalWidth)));

  showMode();
  loadLists().then(resume).finally(() => { document.body.dataset.ready = 'true'; });
})();
