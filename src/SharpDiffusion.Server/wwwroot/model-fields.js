// The prompt and guidance fields the chosen model has, from its /sdapi/v1/sd-models entry (this server's extensions
// "prompts" and "guidance"; an entry without them, or another A1111 server, keeps every A1111 field):
// - SD 1.x/2.x/XL: prompt, negative prompt, CFG scale.
// - SD3 with T5: also the T5 prompt and T5 negative (diffusers' prompt_3, negative_prompt_3).
// - Flux.1 (guidance "distilled" = dev, "none" = schnell): no negative prompt (a note says why), no CFG scale; dev has
//   Forge's "Distilled CFG Scale" (distilled_cfg_scale, its embedded guidance); the T5 prompt is FluxPipeline's prompt_2.
import { $, els, numberOf } from './dom.js';

const m = {
  negativeField: $('negative-field'), negativeNote: $('negative-note'), negative3Field: $('negative-3-field'),
  cfgField: $('cfg-field'), distilledField: $('distilled-cfg-field'), distilled: $('distilled-cfg-scale'),
};

/** Which request field the T5 prompt box fills for the model shown: "prompt_3" (SD3), "prompt_2" (Flux) or null. */
let t5Field = null;

export async function load() {}

export function showFor(model) {
  const prompts = model && Array.isArray(model.prompts) ? model.prompts : null;
  const has = (name) => prompts === null || prompts.includes(name);
  t5Field = prompts && prompts.includes('prompt_3') ? 'prompt_3' : prompts && prompts.includes('prompt_2') ? 'prompt_2' : null;
  els.t5.hidden = t5Field === null;
  m.negative3Field.hidden = !(prompts && prompts.includes('negative_prompt_3'));
  m.negativeField.hidden = !has('negative_prompt');
  m.negativeNote.hidden = has('negative_prompt');
  const guidance = (model && model.guidance) || 'cfg';
  m.cfgField.hidden = guidance !== 'cfg';
  m.distilledField.hidden = guidance !== 'distilled';
}

/** Leaves out what the model does not read (the server would warn or refuse), adds what only it reads. */
export function addTo(body) {
  if (m.negativeField.hidden) delete body.negative_prompt;
  if (m.cfgField.hidden) delete body.cfg_scale;
  if (!m.distilledField.hidden) body.distilled_cfg_scale = numberOf(m.distilled);
  if (t5Field !== null && els.prompt3.value.trim()) body[t5Field] = els.prompt3.value;
  if (t5Field === 'prompt_3' && els.negative3.value.trim()) body.negative_prompt_3 = els.negative3.value;
}

/** Forge's infotext: "CFG scale: 1, Distilled CFG Scale: 3.5" for Flux dev. */
export function reuse(f) {
  if (f['Distilled CFG Scale']) m.distilled.value = f['Distilled CFG Scale'];
}
