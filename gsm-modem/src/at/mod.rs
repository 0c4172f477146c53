//! The AT command layer: [`codec`] cuts a modem's byte stream into
//! [`AtEvent`]s (final result codes, information lines, the `> ` prompt and
//! unsolicited result codes, which may arrive at any moment, also in the
//! middle of a command's response); [`urc`] reads unsolicited result codes;
//! [`command`] builds commands and reads their responses, tolerant of the
//! variants real modems send. This module owns the types the three share:
//! [`AtEvent`], [`FinalResult`], [`ErrorCode`] and [`AtError`].

pub mod codec;
pub mod command;
mod text;
pub mod urc;

pub use codec::AtCodec;
pub use urc::Urc;

/// Why the AT layer could not go on.
#[derive(Debug, thiserror::Error)]
pub enum AtError {
    /// The byte stream failed.
    #[error("modem I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A line grew past the codec's limit without a line end (a modem
    /// sending garbage); the buffer was dropped.
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    /// A response did not have the expected shape.
    /// Its message shows the line redacted ([`crate::redact`]).
    #[error("unexpected response to {command}: {:?}", crate::redact::redact(.line))]
    Unexpected {
        /// The command (e.g. `+CMGL`).
        command: &'static str,
        /// The offending line.
        line: String,
    },
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalResult {
    /// `OK`.
    Ok,
    /// `ERROR`.
    Error,
    /// `+CME ERROR: <n>` (or its verbose text when `AT+CMEE=2`).
    CmeError(ErrorCode),
    /// `+CMS ERROR: <n>` (or text).
    CmsError(ErrorCode),
    /// `NO CARRIER`, `BUSY`, `NO ANSWER`, `NO DIALTONE`.
    CallResult(String),
    /// A vendor's own final line for a command it does not know
    /// (Huawei `COMMAND NOT SUPPORT`, `TOO MANY PARAMETERS`).
    NotSupported(String),
}

impl FinalResult {
    /// True for `OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, FinalResult::Ok)
    }
}

/// The code of a `+CME ERROR` / `+CMS ERROR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// Numeric form (`AT+CMEE=1`).
    Number(u16),
    /// Verbose form (`AT+CMEE=2`), as sent.
    Text(String),
}

/// One thing the modem said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtEvent {
    /// A final result code: the command in progress ended.
    Final(FinalResult),
    /// The `> ` prompt: the modem waits for the PDU and Ctrl-Z.
    Prompt,
    /// An information line of the command in progress (or an echo).
    Line(String),
    /// An unsolicited result code (with its PDU line for `+CMT` / `+CDS`).
    Unsolicited(Urc),
}

impl std::fmt::Display for AtEvent {
    /// For logs: what the modem said, redacted ([`crate::redact`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AtEvent::Final(result) => {
                write!(f, "final {}", crate::redact::redact(&format!("{result:?}")))
            }
            AtEvent::Prompt => f.write_str("prompt"),
            AtEvent::Line(line) => write!(f, "line {:?}", crate::redact::redact(line)),
            AtEvent::Unsolicited(urc) => write!(f, "unsolicited {urc}"),
        }
    }
}
