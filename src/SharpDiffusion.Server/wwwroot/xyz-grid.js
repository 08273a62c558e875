// A1111's "X/Y/Z plot" script: one picture per combination of the axes' values (seeds held), drawn as a labelled grid.
// Sent as script_name "x/y/z plot" with A1111's script_args: [x_type, x_values, x_values_dropdown, y_type, ...,
// z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds,
// margin_size, csv_mode], an axis type being the index of its label in A1111's txt2img list. The section shows only
// when /sdapi/v1/scripts lists the script.
import { api, optional } from './api.js';
import { $, els, fillSelect, setAvailable, state } from './dom.js';
import { addResults } from './gallery.js';
import { setBusy } from './progress.js';
import { seconds, setProgress, setState, setStatus, showError } from './status.js';

const g = {
  section: $('xyz'), enable: $('xyz-enable'), fields: $('xyz-fields'),
  axes: ['x', 'y', 'z'].map((a) => ({ type: $(`xyz-${a}-type`), values: $(`xyz-${a}-values`) })),
  legend: $('xyz-legend'), lone: $('xyz-lone-images'),
};

const SCRIPT = 'x/y/z plot';
// A1111's txt2img axis list (scripts/xyz_grid.py, AxisOption and AxisOptionTxt2Img in order) up to the ones a page
// user reaches for. The index is what is sent (A1111's API has no list of them but the script's own).
const A1111_TXT2IMG_AXES = ['Nothing', 'Seed', 'Var. seed', 'Var. strength', 'Steps', 'Hires steps', 'CFG Scale',
  'Prompt S/R', 'Prompt order', 'Sampler', 'Hires sampler', 'Checkpoint name'];
const NOT_OFFERED = ['Prompt order']; // takes a permutation, not a list of values

g.enable.addEventListener('change', () => { g.fields.hidden = !g.enable.checked; });

export async function load() {
  const scripts = await optional('/sdapi/v1/scripts', {});
  const txt2img = scripts && Array.isArray(scripts.txt2img) ? scripts.txt2img.map((s) => String(s).toLowerCase()) : [];
  const labels = A1111_TXT2IMG_AXES;
  const entries = labels.map((l, n) => [String(n), l]).filter(([, l]) => !NOT_OFFERED.includes(l));
  g.axes.forEach((axis, i) => fillSelect(axis.type, entries, String(i === 0 ? Math.max(0, labels.indexOf('Steps')) : 0)));
  setAvailable(g.section, txt2img.includes(SCRIPT));
}

export function showFor() { }

export function addTo(body, task) {
  if (task !== 'txt2img' || g.section.dataset.unavailable === 'true' || !g.enable.checked) return;
  const [x, y, z] = g.axes.map((a) => [Number(a.type.value), a.values.value, []]);
  body.script_name = SCRIPT;
  // draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, margin_size, csv_mode (values typed as text).
  body.script_args = [...x, ...y, ...z, g.legend.checked, g.lone.checked, false, false, 0, true];
}

/** A script runs through A1111's own POST /sdapi/v1/txt2img (the job queue's /jobs takes no scripts): one answer at
 *  the end, with /sdapi/v1/progress polled meanwhile for the bar; Cancel is /sdapi/v1/interrupt. */
export async function runScript(body) {
  const { task, ...request } = body;
  setBusy(true);
  setState('running');
  setStatus('Making the X/Y/Z plot…');
  setProgress(null);
  state.script = true;
  const started = performance.now();
  const timer = setInterval(async () => {
    const p = await optional('/sdapi/v1/progress?skip_current_image=true', null);
    if (!state.script || !p || !p.state) return;
    const cells = p.state.job_count > 1 ? ` · picture ${p.state.job_no + 1}/${p.state.job_count}` : '';
    setProgress(Number(p.progress) || 0, `X/Y/Z plot${cells}`);
    setStatus(`Making the X/Y/Z plot${cells} · ${Math.floor((Number(p.progress) || 0) * 100)}%`);
  }, 500);
  try {
    const answer = await api('POST', `/sdapi/v1/${task === 'img2img' ? 'img2img' : 'txt2img'}`, request);
    const count = addResults(answer || {});
    setState('completed');
    setProgress(1, 'Done');
    setStatus(`Done: ${count} image${count === 1 ? '' : 's'} in ${seconds((performance.now() - started) / 1000) || 'no time'}.`);
    els.toResults.hidden = count === 0;
  } catch (e) {
    setState(state.cancelled ? 'cancelled' : 'failed');
    setProgress(0);
    setStatus(state.cancelled ? 'Cancelled.' : 'Failed.');
    if (!state.cancelled) showError(e.message);
  } finally {
    clearInterval(timer);
    state.script = false;
    state.cancelled = false;
    setBusy(false);
  }
}

export function reuse() { /* a grid cell's infotext is one picture's: the plot is not taken back */ }
