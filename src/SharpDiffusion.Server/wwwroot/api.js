// The server's own API, called with fetch: JSON in, JSON out, a non-2xx answer thrown with the server's message.

/** fetch + JSON; a non-2xx answer throws an Error whose message is the server's own (its "detail"). */
export async function api(method, url, body) {
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

/** GET url, or `fallback` when the server has no such route or answers with an error (an optional feature). */
export async function optional(url, fallback) {
  try { return (await api('GET', url)) ?? fallback; } catch { return fallback; }
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
