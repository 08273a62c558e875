// The upscale tab (A1111's Extras): one image enlarged by an upscaler of the server's /sdapi/v1/upscalers (Lanczos,
// Nearest, the ESRGAN-family models of --upscaler-dir) through POST /sdapi/v1/extra-single-image. The tab is hidden
// when the server lists no upscaler (or only "None").
import { api, optional } from './api.js';
import { $, fillSelect, numberOf, readAsDataUrl, setAvailable } from './dom.js';
import { addResults } from './gallery.js';
import { setBusy } from './progress.js';
import { clearError, setProgress, setState, setStatus, showError } from './status.js';

const x = {
  choice: $('mode-extras-choice'), section: $('extras'), image: $('extras-image'), picture: $('extras-picture'),
  upscaler: $('extras-upscaler'), resize: $('extras-resize'),
};
let data = null;

export async function load() {
  const list = await optional('/sdapi/v1/upscalers', []);
  const names = (Array.isArray(list) ? list : []).map((u) => u && u.name).filter((n) => typeof n === 'string' && n && n !== 'None');
  // A model upscaler first when there is one: what a user opens this tab for.
  const builtIn = ['Lanczos', 'Nearest'];
  const preferred = names.find((n) => !builtIn.includes(n)) ?? names[0];
  fillSelect(x.upscaler, names.map((n) => [n, n]), preferred);
  setAvailable(x.choice, names.length > 0);
  setAvailable(x.section, names.length > 0);
}

x.image.addEventListener('change', async () => {
  const file = x.image.files && x.image.files[0];
  data = null;
  x.picture.hidden = true;
  if (!file) return;
  clearError();
  try {
    data = await readAsDataUrl(file);
    x.picture.src = data;
    x.picture.alt = `Image to upscale: ${file.name}`;
    x.picture.hidden = false;
  } catch (e) { showError(e.message); }
});

/** POST /sdapi/v1/extra-single-image (a synchronous call: no queue, no progress); the result joins the gallery. */
export async function upscale() {
  if (!data) { showError('Upscaling needs an image: choose one under "Image to upscale" first.'); return; }
  setBusy(true);
  setState('running');
  setStatus('Upscaling…');
  setProgress(null);
  try {
    const answer = await api('POST', '/sdapi/v1/extra-single-image', {
      image: data, resize_mode: 0, upscaling_resize: numberOf(x.resize), upscaler_1: x.upscaler.value, show_extras_results: true,
    });
    // html_info is A1111's HTML of the parameters: shown as text, parsed in an inert document (nothing runs or loads).
    const html = answer && typeof answer.html_info === 'string' ? answer.html_info : '';
    const text = new DOMParser().parseFromString(html, 'text/html').body.textContent.trim();
    addResults({ images: answer && answer.image ? [answer.image] : [], info: { infotexts: [text] } }, 'upscaled');
    setState('completed');
    setProgress(1, 'Done');
    setStatus(`Done: upscaled with ${x.upscaler.value}.`);
  } catch (e) {
    setState('failed');
    setProgress(0);
    setStatus('Not upscaled.');
    showError(e.message);
  } finally { setBusy(false); }
}
