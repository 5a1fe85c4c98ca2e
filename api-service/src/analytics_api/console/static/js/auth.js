// Login: Auth0 Universal Login (Authorization Code + PKCE, Auth0's SPA SDK) when the API has a
// console client id; the demo's dev token (it arrives in the URL fragment, which browsers never
// send to a server, and needs one click to accept); or a pasted token. Whichever it is, the
// token stays in this module's memory: nothing here writes it to localStorage or a cookie.
import { setTokenSource } from "./api.js";

const $ = (id) => document.getElementById(id);

// The claims of a JWT, unverified: only to show the user whose token they are about to use.
export function peekClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

function describe(claims) {
  if (!claims) return "not a JWT";
  const expires = claims.exp ? new Date(claims.exp * 1000).toLocaleString() : "never";
  return `user ${claims.sub ?? "?"}, scopes "${claims.scope ?? ""}", expires ${expires}`;
}

// Reads and removes `dev-token` from the fragment, keeping the rest (a shared `sql`).
function takeFragmentToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("dev-token");
  if (!token) return null;
  fragment.delete("dev-token");
  const rest = fragment.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return token;
}

async function startAuth0(config, onLogin) {
  const { createAuth0Client } = await import("../vendor/vendor.js");
  const client = await createAuth0Client({
    domain: config.domain,
    clientId: config.client_id,
    cacheLocation: "memory",
    authorizeTimeoutInSeconds: 10,  // the silent check after a reload; the login button works meanwhile
    authorizationParams: { audience: config.audience, redirect_uri: location.origin + location.pathname },
  });
  const button = $("login-auth0");
  button.hidden = false;
  button.addEventListener("click", () =>
    client.loginWithRedirect({ appState: { hash: location.hash } }));
  const query = new URLSearchParams(location.search);
  if (query.has("code") && query.has("state")) {
    const { appState } = await client.handleRedirectCallback();
    // Back from Universal Login: drop ?code&state, restore the fragment (a shared query).
    history.replaceState(null, "", location.pathname + (appState?.hash || ""));
  } else {
    // After a reload the in-memory cache is empty: ask the tenant (hidden iframe) whether the
    // Auth0 session still stands; checkSession swallows "login required".
    await client.checkSession();
  }
  if (await client.isAuthenticated()) {
    const user = await client.getUser();
    onLogin(() => client.getTokenSilently(), user?.email || user?.sub || "Auth0 user",
      () => client.logout({ logoutParams: { returnTo: location.origin + location.pathname } }));
  }
}

// Shows the login panel and calls onLogin(tokenSource, who, logout) once a token is chosen.
export async function setupLogin(config, onLogin) {
  const login = (source, who, logout) => {
    performance.mark("console:login");
    setTokenSource(source);
    onLogin(who, logout ?? (() => location.reload()));
  };
  let devToken = null;
  const offerDevToken = () => {
    const token = takeFragmentToken();
    if (!token) return;
    devToken = token;
    $("dev-token-box").hidden = false;
    $("dev-token-who").textContent = describe(peekClaims(token));
  };
  offerDevToken();
  // A demo link pasted into a tab that already shows the console changes only the fragment.
  window.addEventListener("hashchange", offerDevToken);
  $("use-dev-token").addEventListener("click", () => {
    window.removeEventListener("hashchange", offerDevToken);
    const token = devToken;
    login(async () => token, peekClaims(token)?.sub ?? "dev token");
  });
  $("paste-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("paste-token").value.trim().replace(/^Bearer\s+/i, "");
    $("paste-token").value = "";
    if (!token) return;
    login(async () => token, peekClaims(token)?.sub ?? "pasted token");
  });
  if (config.auth0) {
    try {
      await startAuth0(config.auth0, login);
    } catch (error) {
      $("login-error").textContent = `Auth0 login failed: ${error.message}`;
      $("login-error").hidden = false;
    }
  }
}
