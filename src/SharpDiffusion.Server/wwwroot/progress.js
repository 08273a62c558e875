// A job's life on the page: POST /jobs, its Server-Sent Events (GET /jobs/{id}/events; polling when they are refused),
// the progress it reports, DELETE /jobs/{id} to cancel, and following it again after a reload.
import { api } from './api.js';
import { els, mode, state } from './dom.js';
import { upscale } from './extras.js';
import { runScript } from './xyz-grid.js';
import { buildBody } from './generate-form.js';
import { addResults } from './gallery.js';
import { clearError, seconds, setProgress, setState, setStatus, showError, showPreview, showWarnings } from './status.js';

export function setBusy(busy) {
  els.generate.setAttribute('aria-disabled', String(busy));
  els.generate.classList.toggle('busy', busy);
  if (!busy && document.activeElement === els.cancel) els.generate.focus();
  els.cancel.disabled = !busy;
}

export async function generate() {
  if (state.job || els.generate.classList.contains('busy')) return;
  clearError();
  showWarnings([]);
  if (mode() === 'extras') { await upscale(); return; }
  let body;
  try { body = buildBody(); } catch (e) { showError(e.message); return; }
  if (body.script_name) { await runScript(body); return; }
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

export async function resume() {
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

export function finish(d) {
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

export async function cancel() {
  const id = state.job;
  if (!id && !state.script) return;
  els.cancel.disabled = true;
  setStatus('Cancelling…');
  try {
    // A script (no job id here) is A1111's running generation: interrupted as A1111 clients do.
    if (state.script) {
      state.cancelled = true;
      await api('POST', '/sdapi/v1/interrupt');
    } else await api('DELETE', `/jobs/${encodeURIComponent(id)}`);
    // The event stream reports "cancelled" (at once if queued, at the next step if running).
  } catch (e) {
    showError(e.message);
    els.cancel.disabled = false;
  }
}
