//! Compares this crate's SMS-DELIVER decoding with the PyPI decoder
//! `smspdudecoder` 2.2.0 on generated PDUs (`gsm_modem::pdu::corpus`, the
//! lines `examples/pdu_corpus.rs` prints), through
//! `tests/smspdudecoder_compare.py`.
//!
//! Runs when `TEST_SMSPDUDECODER_PYTHON` names a Python interpreter that
//! has smspdudecoder (`pip install smspdudecoder==2.2.0 'bitstring<5'`);
//! ignored, with that reason, when it was unset at build time (build.rs).

use std::io::Write;
use std::process::{Command, Stdio};

const PDUS: usize = 2000;
const SEED: u64 = 20240315;

#[test]
#[cfg_attr(
    not(test_smspdudecoder_python),
    ignore = "needs TEST_SMSPDUDECODER_PYTHON (PyPI smspdudecoder)"
)]
fn smspdudecoder_reads_our_corpus_the_same() {
    let python = std::env::var_os("TEST_SMSPDUDECODER_PYTHON")
        .filter(|value| !value.is_empty())
        .expect("TEST_SMSPDUDECODER_PYTHON is unset, yet was set when this test was built");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/smspdudecoder_compare.py"
    );
    let lines = gsm_modem::pdu::corpus::lines(SEED, PDUS);
    assert_eq!(lines.len(), PDUS);

    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        for line in lines {
            writeln!(stdin, "{line}").expect("the script reads every line");
        }
    });
    let output = child.wait_with_output().expect("the script finishes");
    writer.join().expect("all lines written");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "smspdudecoder disagrees ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // "compared N PDUs (M in every field), K mismatches"
    let in_full: usize = stdout
        .lines()
        .find_map(|line| {
            line.strip_prefix("compared ")?
                .split_once('(')?
                .1
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}\n{stderr}"));
    assert!(
        in_full >= 1000,
        "only {in_full} PDUs compared in every field"
    );
    assert!(stdout.contains(", 0 mismatches"), "{stdout}");
}
