// The console's only way to the server: the public API with a bearer token, like any frontend app.
// The token source is a function held in memory (set at login), never written to storage.

// The console lives at <api>/console/, so "../" is the API's root even behind a path prefix.
const BASE = new URL("../", document.baseURI);
let tokenSource = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setTokenSource(source) {
  tokenSource = source;
}

export function apiUrl(path, query) {
  const url = new URL(path, BASE);
  for (const [key, value] of Object.entries(query || {})) url.searchParams.set(key, value);
  return url;
}

// One request; resolves to the Response when it is 2xx, otherwise throws ApiError with the
// API's own code and message (every error body is {"success": false, "error": {code, message}}).
export async function request(path, { method = "GET", query, body, accept } = {}) {
  if (!tokenSource) throw new ApiError(401, "unauthorized", "not logged in");
  const headers = { Authorization: `Bearer ${await tokenSource()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accept) headers.Accept = accept;
  const response = await fetch(apiUrl(path, query), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
  });
  if (response.ok) return response;
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const payload = await response.json();
    code = payload.error?.code ?? code;
    message = payload.error?.message ?? message;
  } catch {
    // not JSON (a proxy's error page): keep the status line
  }
  throw new ApiError(response.status, code, message);
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

// Runs SQL or a named query. `target` is {sql} or {name, params}; `format` one of the API's own.
export function runTarget(target, format = "json") {
  if (target.name) {
    return request(`queries/${encodeURIComponent(target.name)}`,
      { method: "POST", body: { params: target.params, format } });
  }
  return request("query", { method: "POST", body: { sql: target.sql, format } });
}
