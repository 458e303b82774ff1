// Requests to the server: every one carries the token (a header for fetches, ?token= for what a
// browser loads by itself: the event stream).
export const token = new URLSearchParams(location.search).get("token") || "";

export function withToken(url) {
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

export class ApiError extends Error {
  constructor(status, data) {
    super((data && data.error) || `HTTP ${status}`);
    this.status = status;
    this.data = data || {};
  }
}

async function request(method, url, body, signal) {
  const r = await fetch(url, {
    method,
    headers: { "X-Cnndsl-Token": token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const get = (url, signal) => request("GET", url, undefined, signal);
export const post = (url, body, signal) => request("POST", url, body, signal);
export const put = (url, body, signal) => request("PUT", url, body, signal);

// A file the server makes (a download): fetched with the token, handed to the browser as a blob.
export async function download(url, body) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "X-Cnndsl-Token": token, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const name = /filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "")?.[1] || "download";
  const blob = await r.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  return name;
}
