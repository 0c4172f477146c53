//! The rooms' import rules, read from the sources (issue 16): no module
//! imports a module that imports it back, the protocol rooms (`smpp`,
//! `modem`, `ussd`) never import each other or the outbox, the outbox
//! imports no protocol room, and `smpp` imports only the shared vocabulary
//! (`channel`, `address`, `sms_text`, `client_addr`), nothing of the
//! application. Every file of `src/` stays under 900 lines of non-test
//! code and `main.rs` under 150 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text before its `#[cfg(test)] mod … {`, if it has one.
fn non_test_part(text: &str) -> &str {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            if let Some(next) = lines.peek() {
                let next = next.trim_start();
                let next = next.strip_prefix("pub(crate) ").unwrap_or(next);
                if next.starts_with("mod ") && next.trim_end().ends_with('{') {
                    return &text[..offset];
                }
            }
        }
        offset += line.len();
    }
    text
}

/// The top-level module a file belongs to (`src/smpp/pdu/mod.rs` → `smpp`).
fn room_of(path: &Path) -> String {
    let relative = path.strip_prefix(src()).expect("a file under src/");
    let first = relative.components().next().expect("a path");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

/// Top-level room → the other rooms its non-test code names as `crate::room`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let rooms: BTreeSet<String> = files
        .iter()
        .map(|f| room_of(f))
        .filter(|r| r != "main" && r != "lib")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let room = room_of(file);
        if room == "main" || room == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let code = non_test_part(&text)
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let edges = graph.entry(room.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            for name in names_after(&code[at + "crate::".len()..]) {
                if name != room && rooms.contains(&name) {
                    edges.insert(name);
                }
            }
        }
    }
    graph
}

/// The modules named right after `crate::`: one (`crate::journal::…`), or
/// each of a group's first segments (`crate::{clock::now_ms, domain::Msisdn}`).
fn names_after(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    names
}

#[test]
fn a_group_import_names_each_of_its_modules() {
    assert_eq!(names_after("journal::Journal;"), ["journal"]);
    assert_eq!(
        names_after("{clock::now_ms, domain::{Msisdn, DossierCode}, store};"),
        ["clock", "domain", "store"]
    );
}

fn reaches(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("a non-empty path").clone();
        for next in graph.get(&last).into_iter().flatten() {
            let mut longer = path.clone();
            longer.push(next.clone());
            if next == to {
                return Some(longer);
            }
            if seen.insert(next.clone()) {
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_room_imports_a_room_that_imports_it_back() {
    let graph = imports();
    let mut cycles = Vec::new();
    for room in graph.keys() {
        if let Some(path) = reaches(&graph, room, room) {
            cycles.push(path.join(" → "));
        }
    }
    assert!(cycles.is_empty(), "module cycles: {cycles:#?}");
}

#[test]
fn protocol_rooms_import_neither_each_other_nor_the_outbox() {
    let graph = imports();
    let protocols = ["smpp", "modem", "ussd"];
    for room in protocols {
        let edges = graph.get(room).cloned().unwrap_or_default();
        for other in protocols.iter().chain(["outbox", "gateway"].iter()) {
            assert!(
                *other == room || !edges.contains(*other),
                "{room} imports {other}: {edges:?}"
            );
        }
    }
    let outbox = graph.get("outbox").cloned().unwrap_or_default();
    for protocol in protocols {
        assert!(
            !outbox.contains(protocol),
            "outbox imports {protocol}: {outbox:?}"
        );
    }
}

#[test]
fn smpp_imports_only_the_shared_vocabulary() {
    let graph = imports();
    let allowed: BTreeSet<&str> = ["channel", "address", "sms_text", "client_addr", "clock"]
        .into_iter()
        .collect();
    let smpp = graph.get("smpp").cloned().unwrap_or_default();
    let foreign: Vec<&String> = smpp
        .iter()
        .filter(|r| !allowed.contains(r.as_str()))
        .collect();
    assert!(foreign.is_empty(), "smpp imports {foreign:?}");
    let channel = graph.get("channel").cloned().unwrap_or_default();
    assert!(
        channel.iter().all(|r| allowed.contains(r.as_str())),
        "channel imports {channel:?}"
    );
}

#[test]
fn no_source_file_has_over_900_lines_of_non_test_code_and_main_under_150() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut too_long = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let lines = non_test_part(&text).lines().count();
        if lines > 900 {
            too_long.push(format!("{} ({lines})", file.display()));
        }
    }
    assert!(
        too_long.is_empty(),
        "files over 900 non-test lines: {too_long:?}"
    );
    let main = std::fs::read_to_string(src().join("main.rs")).expect("src/main.rs");
    assert!(
        main.lines().count() < 150,
        "main.rs has {} lines",
        main.lines().count()
    );
}
