//! Integration tests, one binary: The HTTP ports: the admin API and console (also walked in Chromium and fuzzed by schemathesis),
//! the public lookup, operations (/metrics), Kannel's get-url drop-in, the limits every port keeps,
//! template preview and reload.
//! Shared helpers come from `tests/support` (the `support` crate).

mod admin_api;
mod admin_browser;
mod admin_schemathesis;
mod cluster_console;
mod http_limits;
mod kannel_http;
mod ops_http;
mod public_http;
mod template_preview;
mod template_reload;
