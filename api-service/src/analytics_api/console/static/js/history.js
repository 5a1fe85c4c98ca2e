// Local history of queries (SQL text only, in this browser's localStorage; never a token) and
// share links, which carry the SQL in the URL fragment: the fragment never reaches a server log,
// and the receiver still logs in with their own token.
const KEY = "analytics-console.history";
const LIMIT = 50;

export function readHistory() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || [];
  } catch {
    return [];
  }
}

export function remember(sql, rows) {
  const entries = readHistory().filter((e) => e.sql !== sql);
  entries.unshift({ sql, rows, at: new Date().toISOString() });
  try {
    localStorage.setItem(KEY, JSON.stringify(entries.slice(0, LIMIT)));
  } catch {
    // storage full or disabled: history is a convenience, the query already ran
  }
  return entries.slice(0, LIMIT);
}

export function shareLink(sql) {
  const fragment = new URLSearchParams({ sql });
  return `${location.origin}${location.pathname}#${fragment}`;
}

export function sharedSql() {
  return new URLSearchParams(location.hash.slice(1)).get("sql");
}
