//! The USSD callback in the convention aggregators use: the aggregator
//! POSTs `sessionId`, `serviceCode`, `phoneNumber` and `text` (every input
//! of the session so far, `*`-joined; empty when the citizen has just
//! dialled) as a form, and reads back plain text starting `CON ` (show it
//! and wait for input) or `END ` (show it and close). A request the gateway
//! cannot read is answered 400 with what is wrong, in plain text.
//!
//! The aggregator names the citizen (`phoneNumber`), so only it may call: a
//! [`TrustedCaller`] checks every request first (`ussd.http.allow`, and
//! `ussd.http.secret` when set).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::service::{HttpTurn, UssdService};
use super::UssdHttpSettings;
use crate::channel::UssdAnswer;
use crate::store::DossierLookup;
use crate::trusted_caller::{plain, TrustedCaller};

/// Longest `sessionId` accepted.
const MAX_SESSION_ID: usize = 128;
/// Longest `text` accepted (every input of a session).
const MAX_TEXT: usize = 1024;
/// Longest `serviceCode` accepted (a USSD string has at most 182 characters).
const MAX_SERVICE_CODE: usize = 182;

/// One callback request. Unknown fields (`networkCode`, …) are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackRequest {
    /// The aggregator's id for the USSD session.
    #[serde(default)]
    pub session_id: String,
    /// The code dialled (`*8058#`); a direct dial (`*8058*<code>#`) sent
    /// with an empty `text` is answered as one.
    #[serde(default)]
    pub service_code: String,
    /// The citizen's number.
    #[serde(default)]
    pub phone_number: String,
    /// Every input so far, `*`-joined.
    #[serde(default)]
    pub text: String,
}

/// The callback's body: `CON <screen>` or `END <screen>`.
pub fn callback_body(answer: &UssdAnswer) -> String {
    let verb = if answer.end { "END" } else { "CON" };
    format!("{verb} {}", answer.text)
}

/// The callback's routes: `POST <path>`, callers checked.
pub fn router<S: DossierLookup>(
    settings: &UssdHttpSettings,
    service: Arc<UssdService<S>>,
) -> Router {
    let routes = Router::new()
        .route(&settings.path, post(callback::<S>))
        .with_state(service);
    TrustedCaller::new("ussd.http", &settings.allow, &settings.secret).guard(routes)
}

async fn callback<S: DossierLookup>(
    State(service): State<Arc<UssdService<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: Result<Form<CallbackRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Form(request) = match form {
        Ok(form) => form,
        Err(rejection) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!(
                    "cannot read the USSD callback: {rejection}; send a form \
                     (application/x-www-form-urlencoded) with sessionId, serviceCode, phoneNumber and text"
                ),
            )
        }
    };
    let mut problems = Vec::new();
    if request.session_id.trim().is_empty() {
        problems.push("sessionId is missing".to_owned());
    } else if request.session_id.len() > MAX_SESSION_ID {
        problems.push(format!(
            "sessionId is longer than {MAX_SESSION_ID} characters"
        ));
    }
    if request.phone_number.trim().is_empty() {
        problems.push("phoneNumber is missing".to_owned());
    }
    if request.text.len() > MAX_TEXT {
        problems.push(format!("text is longer than {MAX_TEXT} characters"));
    }
    if request.service_code.len() > MAX_SERVICE_CODE {
        problems.push(format!(
            "serviceCode is longer than {MAX_SERVICE_CODE} characters"
        ));
    }
    if !problems.is_empty() {
        return plain(StatusCode::BAD_REQUEST, problems.join("; "));
    }
    let answer = service
        .http_turn(HttpTurn {
            session_id: request.session_id.trim(),
            service_code: request.service_code.trim(),
            phone: request.phone_number.trim(),
            text: request.text.trim(),
            caller: peer.ip(),
        })
        .await;
    plain(StatusCode::OK, callback_body(&answer))
}

/// The callback's listener.
pub struct UssdHttp {
    listener: TcpListener,
    router: Router,
    limits: crate::http_server::HttpLimits,
}

impl UssdHttp {
    /// Binds `settings.bind` for `service`.
    ///
    /// # Errors
    ///
    /// The socket's, when the address cannot be bound.
    pub async fn bind<S: DossierLookup>(
        settings: &UssdHttpSettings,
        service: Arc<UssdService<S>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(settings.bind).await?;
        Ok(UssdHttp {
            listener,
            router: router(settings, service),
            limits: settings.limits.clone(),
        })
    }

    /// Where it listens.
    ///
    /// # Errors
    ///
    /// The socket's.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::http_server::serve(self.listener, self.router, &self.limits, shutdown).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_start_with_con_or_end() {
        let open = UssdAnswer {
            text: "1. Tra cuu".into(),
            end: false,
        };
        assert_eq!(callback_body(&open), "CON 1. Tra cuu");
        let close = UssdAnswer {
            text: "HS 1".into(),
            end: true,
        };
        assert_eq!(callback_body(&close), "END HS 1");
    }
}
