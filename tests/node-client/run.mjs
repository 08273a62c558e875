// A real AUTOMATIC1111 client (node-sd-webui) against `sharpdiffusion serve`, driven by the xunit tests
// (tests/SharpDiffusion.Tests/Server/NodeClientTests.cs).
//
//   node run.mjs API_URL OUT_DIR PARAMS.json
//
// PARAMS.json: { prompt, negativePrompt, seed, steps, width, height, cfgScale, samplingMethod, initImage (a PNG path) }.
// Writes into OUT_DIR: txt2img.png and txt2img.json (the response without its images), img2img.png and img2img.json,
// pnginfo.json (what the client's pngInfo() returns for txt2img.png). Exits 1 with the error on stderr if a call fails.
import sdwebui from 'node-sd-webui';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const [apiUrl, outDir, paramsFile] = process.argv.slice(2);
if (!apiUrl || !outDir || !paramsFile) {
  console.error('usage: node run.mjs API_URL OUT_DIR PARAMS.json');
  process.exit(2);
}
const params = JSON.parse(await readFile(paramsFile, 'utf8'));
const client = sdwebui({ apiUrl });
const common = {
  prompt: params.prompt,
  negativePrompt: params.negativePrompt,
  seed: params.seed,
  steps: params.steps,
  width: params.width,
  height: params.height,
  cfgScale: params.cfgScale,
  samplingMethod: params.samplingMethod,
};

async function save(name, response) {
  const { images, ...rest } = response;
  await writeFile(join(outDir, `${name}.png`), Buffer.from(images[0], 'base64'));
  await writeFile(join(outDir, `${name}.json`), JSON.stringify({ ...rest, image_count: images.length }));
  return images[0];
}

try {
  const txt = await save('txt2img', await client.txt2img(common));
  const init = (await readFile(params.initImage)).toString('base64');
  await save('img2img', await client.img2img({ ...common, imageData: [init] }));
  await writeFile(join(outDir, 'pnginfo.json'), JSON.stringify(await client.pngInfo({ imageData: txt })));
} catch (e) {
  console.error(`node-sd-webui failed: ${e?.stack ?? e}`);
  process.exit(1);
}
