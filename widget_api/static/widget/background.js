// The extension's background: pairing with the backend. It runs here, not in the popup,
// because the popup closes as soon as the sign-in window takes the focus.
//
// OAuth 2.0 authorization code with PKCE (RFC 7636), as a native app does it (RFC 8252): the
// identity API opens the backend's consent page and stops the redirect to our own redirect
// URL (https://<hash of our id>.extensions.allizom.org/), which no web site can serve; the
// code it carries is worthless without the verifier that never left this script.
"use strict";

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));

async function pair(backend, clientName) {
  const verifier = random(48);
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = random(16);
  const redirectUri = messenger.identity.getRedirectURL();
  const url = new URL("/auth/widget", backend);
  for (const [k, v] of Object.entries({ response_type: "code", redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: "S256", state, client_name: clientName })) url.searchParams.set(k, v);
  let back;
  try {
    back = new URL(await messenger.identity.launchWebAuthFlow({ url: url.href, interactive: true }));
  } catch (e) {
    return { ok: false, error: "pair_cancelled", detail: String(e && e.message || e) };
  }
  if (back.searchParams.get("state") !== state) return { ok: false, error: "pair_failed", detail: "state mismatch" };
  if (!back.searchParams.get("code")) return { ok: false, error: back.searchParams.get("error") === "access_denied" ? "pair_cancelled" : "pair_failed" };
  let response;
  try {
    response = await fetch(new URL("/auth/token", backend), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ grant_type: "authorization_code", code: back.searchParams.get("code"), code_verifier: verifier, redirect_uri: redirectUri }),
    });
  } catch (_e) {
    return { ok: false, error: "unreachable" };
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok || !data.access_token) return { ok: false, error: "pair_failed", detail: data.detail || `HTTP ${response.status}` };
  await messenger.storage.local.set({ backend, token: data.access_token, pairedAt: Date.now() });
  return { ok: true };
}

messenger.runtime.onMessage.addListener((message) => {
  if (message && message.type === "pair") return pair(message.backend, message.clientName || "Thunderbird");
  return undefined;
});
