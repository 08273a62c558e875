// SharpDiffusion's page: plain JS modules, no framework, no build step, nothing loaded from anywhere but this server.
// It talks to the server's own API: /sdapi/v1/{samplers,schedulers,sd-models,options,upscalers,latent-upscale-modes,
// scripts} and /controlnet/{model_list,module_list} for the form, POST /jobs to start a generation, GET
// /jobs/{id}/events (Server-Sent Events) for progress and live previews, DELETE /jobs/{id} to cancel, POST
// /controlnet/detect for a ControlNet map's preview and POST /sdapi/v1/extra-single-image for the upscale tab.
import { crisp, els, form, showMode, state } from './dom.js';
import { loadLists, switchModel } from './generate-form.js';
import { cancel, generate, resume } from './progress.js';

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
