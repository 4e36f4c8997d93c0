/** The server's icon (a package), as its pages link it and as /favicon.ico serves it. */
export const FAVICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="3" y="8" width="26" height="20" rx="3" fill="#2563eb"/><path d="M3 13h26M13 8v7h6V8" stroke="#fff" stroke-width="2" fill="none"/></svg>';
