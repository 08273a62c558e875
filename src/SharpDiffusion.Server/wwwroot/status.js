// What the page tells the user about the job: status line, progress bar, errors, warnings and the preview.
import { els } from './dom.js';

export function showError(message) {
  els.error.textContent = message;
  els.error.hidden = false;
}

export function clearError() {
  els.error.textContent = '';
  els.error.hidden = true;
}

export function showWarnings(list) {
  els.warnings.replaceChildren(...list.map((w) => {
    const li = document.createElement('li');
    li.textContent = w;
    return li;
  }));
  els.warnings.hidden = list.length === 0;
}

export function setStatus(text) { els.status.textContent = text; }

/** The job's state, on #job for CSS and tests; a change of state (not every step) is spoken by screen readers. */
export function setState(name) {
  if (els.job.dataset.state === name) return;
  els.job.dataset.state = name;
  const spoken = { queued: 'Queued.', running: 'Generating.', cancelled: 'Cancelled.', failed: 'Failed.' }[name];
  if (spoken) els.announce.textContent = spoken;
}

/** value in 0..1, or null for "not known yet" (an indeterminate bar). */
export function setProgress(value, text) {
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

export function seconds(s) {
  if (!Number.isFinite(s) || s < 0) return '';
  if (s < 1) return 'under 1 s';
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

export function showPreview(src, caption) {
  els.preview.src = src;
  els.previewCaption.textContent = caption;
  els.previewFigure.hidden = false;
}
