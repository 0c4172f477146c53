//! GSM modems over AT commands, on tokio. Knows SMS and modems, nothing of
//! what the messages are for.
//!
//! # Module map
//!
//! - [`pdu`]: the SMS PDU codec (3GPP TS 23.040 / 23.038): SMS-DELIVER,
//!   SMS-SUBMIT and SMS-STATUS-REPORT; GSM-7 with the extension table and
//!   fill bits after a user data header, UCS-2, 8-bit; concatenation with
//!   8- and 16-bit references; time stamps with their time zone.
//! - [`at`]: the AT line codec over any async byte stream (final results,
//!   information lines, the `> ` prompt, unsolicited result codes at any
//!   moment) and typed commands and responses, tolerant of real modems'
//!   variants.
//! - [`session`]: one modem driven over any async byte stream: init, SIM
//!   PIN, receiving by indication and periodic sweep (delete only when the
//!   owner says), sending with `AT+CMGS`, timeouts, hang detection, soft
//!   reset, re-initialisation after a reboot.
//! - [`redact`]: what a modem line may hold of a person (a number, a PDU)
//!   taken out, for logs and error messages.
//! - `sim` (feature `sim`): a scripted GSM modem on a pty, a phone and faults, for tests.

pub mod at;
pub mod pdu;
pub mod redact;
pub mod session;
#[cfg(feature = "sim")]
pub mod sim;
