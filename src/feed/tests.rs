//! Unit and property tests of the wire types, the digest and the cursor.

use proptest::prelude::*;

use super::*;

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn empty_bucket_hash_is_sha256_of_nothing() {
    assert_eq!(bucket_hash(std::iter::empty()), EMPTY_SHA256);
    let d = digest(std::iter::empty(), 3);
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|b| b.count == 0 && b.hash == EMPTY_SHA256));
}

#[test]
fn bucket_hash_is_sha256_of_the_sorted_lines() {
    // sha256("a\t1\nb\t2\n"), computed with Python's hashlib.
    let expected = "6d2d1bd0abaed39e891321f7fb19d3f21108674b420432e927ae2fb4d0b7fb73";
    assert_eq!(bucket_hash([("b", 2), ("a", 1)]), expected);
    assert_eq!(bucket_hash([("a", 1), ("b", 2)]), expected);
}

#[test]
fn bucket_is_the_first_four_bytes_mod_n() {
    let code = "000.00.12.H58-240315-0007";
    let h = Sha256::digest(code.as_bytes());
    let n = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    assert_eq!(bucket_of(code, 256), n % 256);
    // Computed with Python's hashlib.
    assert_eq!(bucket_of(code, 256), 106);
    assert_eq!(bucket_of(code, 1), 0);
    assert_eq!(bucket_of(code, 7), n % 7);
}

#[test]
fn record_round_trips_and_converts() {
    let line = r#"{"MaHoSo": "000.00.12.H58-240315-0007", "TenTTHC": "Cấp giấy phép xây dựng nhà ở riêng lẻ", "DonViXuLy": "UBND huyện Cái Bè", "TrangThaiHoSo": 4, "NgayTiepNhan": "20240315081500", "NgayHenTra": "20240329170000", "NgayKetThucXuLy": "", "NgayTra": "", "SoDienThoai": "0912345678", "ChuHoSo": "Nguyễn Văn An", "version": 3}"#;
    let record: FeedRecord = serde_json::from_str(line).unwrap();
    assert_eq!(record.code, "000.00.12.H58-240315-0007");
    assert_eq!(record.version, 3);
    assert!(!record.deleted);
    let text = serde_json::to_string(&record).unwrap();
    assert!(!text.contains("deleted"));
    assert_eq!(serde_json::from_str::<FeedRecord>(&text).unwrap(), record);
    let dossier = record.to_dossier().unwrap().unwrap();
    assert_eq!(dossier.version, 3);
    assert_eq!(dossier.status.code(), 4);
}

#[test]
fn tombstone_has_no_dossier() {
    let t: FeedRecord = serde_json::from_str(
        r#"{"MaHoSo": "38.98.H29-210519-0003", "version": 7, "deleted": true}"#,
    )
    .unwrap();
    assert_eq!(t, FeedRecord::tombstone("38.98.H29-210519-0003", 7));
    assert!(t.to_dossier().unwrap().is_none());
    assert!(serde_json::to_string(&t)
        .unwrap()
        .contains(r#""deleted":true"#));
}

#[test]
fn records_without_code_or_version_are_rejected() {
    assert!(serde_json::from_str::<FeedRecord>(r#"{"version": 1}"#).is_err());
    assert!(serde_json::from_str::<FeedRecord>(r#"{"MaHoSo": "x"}"#).is_err());
}

#[test]
fn error_body_shape() {
    let e = FeedError::new(ErrorKind::CursorExpired, "too old").with_epoch("1");
    let v: serde_json::Value = serde_json::to_value(&e).unwrap();
    assert_eq!(v["error"], "cursor_expired");
    assert_eq!(v["epoch"], "1");
    assert_eq!(e.error.status(), 410);
    let later: FeedError =
        serde_json::from_str(r#"{"error": "quota_exceeded", "message": "later kind"}"#).unwrap();
    assert_eq!(later.error, ErrorKind::Unknown);
}

#[test]
fn bad_cursors_are_rejected() {
    for bad in [
        "",
        "-",
        "1-",
        "-1",
        "1_2",
        "g-1",
        "1-2-3",
        "11111111111111111-1",
    ] {
        assert!(Cursor::decode(bad).is_err(), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn cursor_round_trips(epoch in any::<u64>(), seq in any::<u64>()) {
        let c = Cursor { epoch, seq };
        prop_assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn digest_ignores_order_and_counts_everything(
        mut entries in proptest::collection::btree_map("[0-9.A-Z-]{1,20}", 1i64..1000, 0..60)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
        buckets in 1u32..40,
        seed in any::<u64>(),
    ) {
        let a = digest(entries.iter().map(|(c, v)| (c.as_str(), *v)), buckets);
        let n = entries.len();
        if n > 1 {
            let k = (seed % n as u64) as usize;
            entries.rotate_left(k);
            entries.reverse();
        }
        let b = digest(entries.iter().map(|(c, v)| (c.as_str(), *v)), buckets);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.len(), buckets as usize);
        prop_assert_eq!(a.iter().map(|d| d.count).sum::<u64>(), n as u64);
    }

    #[test]
    fn digest_sees_a_version_change(
        entries in proptest::collection::btree_map("[0-9.A-Z-]{1,20}", 1i64..1000, 1..40),
        pick in any::<prop::sample::Index>(),
        buckets in 1u32..16,
    ) {
        let entries: Vec<(String, i64)> = entries.into_iter().collect();
        let before = digest(entries.iter().map(|(c, v)| (c.as_str(), *v)), buckets);
        let i = pick.index(entries.len());
        let mut changed = entries.clone();
        changed[i].1 += 1;
        let after = digest(changed.iter().map(|(c, v)| (c.as_str(), *v)), buckets);
        let bucket = bucket_of(&entries[i].0, buckets) as usize;
        prop_assert_ne!(&before[bucket].hash, &after[bucket].hash);
        for (j, (x, y)) in before.iter().zip(&after).enumerate() {
            if j != bucket { prop_assert_eq!(x, y); }
        }
    }
}

#[test]
fn streamed_digest_equals_the_collected_one() {
    let codes: Vec<String> = (0..500)
        .map(|i| format!("000.00.{i:02}.H58-240315-{i:04}"))
        .collect();
    let entries: Vec<(&str, i64)> = codes
        .iter()
        .map(|c| (c.as_str(), c.len() as i64 % 7 + 1))
        .collect();
    let mut sorted = entries.clone();
    sorted.sort_unstable();
    let mut builder = DigestBuilder::new(16);
    for (code, version) in &sorted {
        builder.push(code, *version).unwrap();
    }
    // `digest` takes any order.
    let mut reversed = entries;
    reversed.reverse();
    assert_eq!(builder.finish(), digest(reversed, 16));
}

#[test]
fn digest_builder_refuses_codes_out_of_order() {
    let mut builder = DigestBuilder::new(4);
    builder.push("b", 1).unwrap();
    let error = builder.push("a", 1).unwrap_err();
    assert_eq!((error.code.as_str(), error.previous.as_str()), ("a", "b"));
    builder.push("c", 2).unwrap();
    let digests = builder.finish();
    assert_eq!(digests.iter().map(|d| d.count).sum::<u64>(), 2);
    assert_eq!(digests, digest([("b", 1), ("c", 2)], 4));
}

#[test]
fn pending_is_optional_on_the_wire() {
    let page: ChangesPage =
        serde_json::from_str(r#"{"epoch":"e","records":[],"next_cursor":"c","has_more":false}"#)
            .unwrap();
    assert_eq!(page.pending, None);
    assert!(!serde_json::to_string(&page).unwrap().contains("pending"));
    let page = ChangesPage {
        pending: Some(12),
        ..page
    };
    let text = serde_json::to_string(&page).unwrap();
    assert!(text.contains(r#""pending":12"#), "{text}");
    assert_eq!(serde_json::from_str::<ChangesPage>(&text).unwrap(), page);
}
