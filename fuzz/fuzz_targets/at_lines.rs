//! A modem's byte stream, cut at arbitrary points, through the AT codec:
//! never panics, never loops, and an `OK` sent after the garbage is read.
#![no_main]

use bytes::BytesMut;
use gsm_modem::at::{AtCodec, AtEvent, FinalResult};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the stream is cut in two, so events that
    // straddle reads are exercised.
    let (cut, data) = match data.split_first() {
        Some((&cut, rest)) => (usize::from(cut).min(rest.len()), rest),
        None => return,
    };
    let mut codec = AtCodec::new();
    let mut buf = BytesMut::new();
    for chunk in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(chunk);
        // Decode until the codec wants more. An error (a line too long)
        // does not stop the loop: the codec drops that line and goes on,
        // and stopping here would leave the rest of the garbage in the
        // buffer, more than the 64 events allowed below could drain. Every
        // error consumes bytes, so this cannot spin.
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => break,
            }
        }
    }
    // Whatever came before, a clean line end and OK are understood.
    codec.expect_nothing();
    buf.extend_from_slice(b"\r\n\"\r\nOK\r\n");
    let mut saw_ok = false;
    for _ in 0..64 {
        match codec.decode(&mut buf) {
            Ok(Some(AtEvent::Final(FinalResult::Ok))) => saw_ok = true,
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => break,
        }
    }
    assert!(saw_ok, "OK after garbage was not read");
});
