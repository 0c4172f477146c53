//! The admin console's web UI: one page, one script, one stylesheet, built
//! into the binary (`src/admin/web/`; plain JavaScript, no build step, no
//! outside fonts or scripts). The page is a single-page app over the JSON
//! API of `docs/admin-api.md` with hash routes (`#/dashboard`,
//! `#/templates/found`, …), in Vietnamese by default with English a click
//! away.
//!
//! - `GET /` — `index.html`
//! - `GET /assets/app.js` — the app
//! - `GET /assets/app.css` — its styles
//!
//! Each answer says `Cache-Control: no-cache` (an upgrade's new script is
//! picked up at once), `X-Content-Type-Options: nosniff`, and a
//! Content-Security-Policy allowing scripts and styles from this origin
//! only: the page has no inline script or style, so an injected one would
//! not run.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The policy every asset is served with.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const APP_CSS: &str = include_str!("web/app.css");

/// The UI's routes, to merge into the console's router beside `/api/v1`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One plain HTTP/1.1 GET: the head (lower-cased) and the body.
    async fn fetch(addr: std::net::SocketAddr, path: &str) -> (String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
        (head.to_ascii_lowercase(), body.to_owned())
    }

    /// The block of `app.js`'s strings in `lang` (`vi: { … }`).
    fn strings(lang: &str) -> &'static str {
        let start = APP_JS
            .find(&format!("\n    {lang}: {{\n"))
            .expect("a block per language");
        let end = start + APP_JS[start..].find("\n    },\n").expect("its end");
        &APP_JS[start..end]
    }

    #[test]
    fn every_reply_state_and_outcome_has_words_in_both_languages_and_a_place_in_the_filter() {
        let filter = APP_JS
            .lines()
            .find(|line| line.contains("const OUTCOME_ORDER"))
            .expect("the outcome filter's list");
        let outcomes = crate::reply::ReplyKind::ALL
            .iter()
            .map(|kind| kind.as_str())
            .chain([
                "silenced",
                crate::journal::UNDECODABLE,
                "not_a_phone_number",
                "expired",
            ]);
        for lang in ["vi", "en"] {
            for state in crate::journal::ReplyState::ALL {
                let key = format!("state_{}:", state.as_str());
                assert!(strings(lang).contains(&key), "{lang} lacks {key}");
            }
            for outcome in outcomes.clone() {
                let key = format!("outcome_{outcome}:");
                assert!(strings(lang).contains(&key), "{lang} lacks {key}");
            }
        }
        for outcome in outcomes {
            assert!(
                filter.contains(&format!("\"{outcome}\"")),
                "the outcome filter lacks {outcome}"
            );
        }
        assert!(
            APP_JS.contains("stateLabel(m.state)"),
            "the message log shows states in words"
        );
    }

    #[tokio::test]
    async fn serves_the_page_script_and_styles_with_their_types_and_the_policy() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app: Router = router::<()>();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let cases = [
            ("/", "text/html; charset=utf-8", "<!doctype html>"),
            (
                "/assets/app.js",
                "text/javascript; charset=utf-8",
                "\"use strict\";",
            ),
            ("/assets/app.css", "text/css; charset=utf-8", ":root"),
        ];
        for (path, content_type, start) in cases {
            let (head, body) = fetch(addr, path).await;
            assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
            assert!(
                head.contains(&format!("\r\ncontent-type: {content_type}\r\n")),
                "{path}: {head}"
            );
            assert!(
                head.contains("\r\ncache-control: no-cache\r\n"),
                "{path}: {head}"
            );
            assert!(
                head.contains("\r\nx-content-type-options: nosniff\r\n"),
                "{path}: {head}"
            );
            assert!(
                head.contains(&format!(
                    "\r\ncontent-security-policy: {}\r\n",
                    CONTENT_SECURITY_POLICY.to_ascii_lowercase()
                )),
                "{path}: {head}"
            );
            assert!(
                body.contains(start),
                "{path} body starts {:?}",
                &body[..40.min(body.len())]
            );
        }
        let (head, _) = fetch(addr, "/assets/other.js").await;
        assert!(head.starts_with("http/1.1 404"), "{head}");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_loads_only_its_own_assets() {
        let lower = INDEX_HTML.to_ascii_lowercase();
        assert!(
            !lower.contains("<style"),
            "inline <style> would be refused by the CSP"
        );
        assert!(
            !lower.contains(" style="),
            "style attributes would be refused by the CSP"
        );
        for (at, _) in lower.match_indices("<script") {
            let tag = &lower[at..at + lower[at..].find('>').unwrap()];
            assert!(
                tag.contains(" src=\"assets/"),
                "inline or outside script: {tag}"
            );
        }
        assert!(
            !lower.contains("http://") && !lower.contains("https://"),
            "no outside URL"
        );
        assert!(lower.contains("href=\"assets/app.css\""));
        assert!(
            !APP_JS.contains("innerHTML"),
            "the app builds nodes, never HTML strings"
        );
    }
}
