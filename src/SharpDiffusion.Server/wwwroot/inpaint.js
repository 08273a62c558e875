// img2img and inpainting: the init image (file, drop, or a result sent here) on a canvas, and the mask painted over
// it with the mouse or the keyboard, sent as a white-on-black PNG.
import { crisp, els, state } from './dom.js';
import { clearError, showError } from './status.js';

const mctx = els.mask.getContext('2d', { willReadFrequently: true });
const ictx = els.initCanvas.getContext('2d');
const MASK_RGB = [255, 64, 128]; // shown half transparent over the image; sent as white (repaint) on black (keep)
const brush = { painting: false, last: null, cursor: { x: 0, y: 0 }, pointerInside: false };
export async function loadInitImage(source) {
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

export function maskPainted() {
  const d = maskPixels().data;
  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
  return false;
}

/** The mask as the server takes it: a PNG, white = repaint, black = keep (the painted coverage as grey). */
export function maskPng() {
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
