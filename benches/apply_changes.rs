//! How fast the read model takes the core's changes: `--changes` changes
//! (default 200,000) over `--codes` dossiers (default 100,000), applied in
//! batches of `--batch` (default 1,000) in streaming mode, each batch with
//! its checkpoint in its transaction, as the sync worker applies them.
//! Mostly updates with every field set, 3 % deletions, 2 % stale copies the
//! version guard refuses. Runs against SQLite (a temporary file, WAL and
//! `synchronous=FULL` as the store opens it) and, when `--postgres URL` or
//! `TEST_DATABASE_URL` names a server, against a fresh PostgreSQL database
//! (created there and dropped afterwards). Prints changes per second for
//! each, and checks the result: the live dossiers are the ones expected.
//!
//! `cargo bench --bench apply_changes [-- --changes N --codes N --batch N --postgres URL]`

use support::temp_postgres;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::NaiveDate;
use motcua_sms::domain::{Dossier, DossierCode, DossierStatus, Msisdn};
use motcua_sms::store::{
    ApplyMode, ApplyReport, Change, DossierWriter, ReadModel, SyncCheckpoint, SyncStage,
};

struct Args {
    changes: usize,
    codes: usize,
    batch: usize,
    postgres: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        changes: 200_000,
        codes: 100_000,
        batch: 1_000,
        postgres: temp_postgres::maintenance_url(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            "--changes" => args.changes = value()?.parse()?,
            "--codes" => args.codes = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--postgres" => args.postgres = Some(value()?),
            other => bail!(
                "unknown argument {other:?}; use --changes N --codes N --batch N --postgres URL"
            ),
        }
    }
    if args.codes == 0 || args.codes > 9_999 * 28 * 12 || args.batch == 0 || args.changes == 0 {
        bail!("--codes must be 1 to 3,359,664, --batch and --changes at least 1");
    }
    Ok(args)
}

/// xorshift64*: the same changes every run, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Dossier code number `k`: a day's order number, the day, the agency.
fn code(k: usize) -> DossierCode {
    let order = k % 9_999 + 1;
    let day = k / 9_999;
    let text = format!(
        "000.00.{:02}.H{:02}-24{:02}{:02}-{order:04}",
        10 + k % 50,
        10 + (k / 50) % 80,
        1 + (day / 28) % 12,
        1 + day % 28,
    );
    DossierCode::parse(&text).expect("a valid code")
}

const PROCEDURES: [&str; 4] = [
    "Cấp giấy phép xây dựng nhà ở riêng lẻ",
    "Đăng ký khai sinh",
    "Cấp đổi giấy chứng nhận quyền sử dụng đất",
    "Đăng ký thành lập hộ kinh doanh",
];
const AGENCIES: [&str; 3] = [
    "UBND huyện Đông Anh",
    "Bộ phận Một cửa Sở Tài nguyên và Môi trường",
    "UBND phường Bến Nghé",
];
const OWNERS: [&str; 3] = ["Nguyễn Văn An", "Trần Thị Bích Ngọc", "Lê Hoàng Phúc"];

fn dossier(rng: &mut Rng, code: DossierCode, version: i64) -> Dossier {
    let received = NaiveDate::from_ymd_opt(2024, 3, 15)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap()
        + chrono::Duration::minutes(rng.below(60 * 24 * 90) as i64);
    let appointment = received + chrono::Duration::days(3 + rng.below(20) as i64);
    let status = 1 + rng.below(10) as i64;
    let finished = (status >= 6).then(|| received + chrono::Duration::hours(rng.below(500) as i64));
    let returned = (status >= 9).then(|| appointment + chrono::Duration::hours(2));
    let phone = format!("09{:08}", rng.below(100_000_000));
    Dossier {
        code,
        procedure_name: Some(PROCEDURES[rng.below(4) as usize].to_owned()),
        agency_name: Some(AGENCIES[rng.below(3) as usize].to_owned()),
        status: DossierStatus::from_code(status).unwrap(),
        received_at: Some(received),
        appointment_at: Some(appointment),
        finished_at: finished,
        returned_at: returned,
        owner_phone: Some(Msisdn::parse(&phone).unwrap()),
        owner_name: Some(OWNERS[rng.below(3) as usize].to_owned()),
        version,
    }
}

/// The batches, and the live dossiers' versions they leave.
fn workload(args: &Args) -> (Vec<Vec<Change>>, HashMap<String, i64>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let codes: Vec<DossierCode> = (0..args.codes).map(code).collect();
    let mut versions = vec![0_i64; args.codes];
    let mut live = vec![false; args.codes];
    let mut changes = Vec::with_capacity(args.changes);
    for _ in 0..args.changes {
        let k = rng.below(args.codes as u64) as usize;
        let roll = rng.below(100);
        if roll < 2 && versions[k] > 1 {
            // A stale copy: refused by the guard.
            let stale = versions[k] - 1;
            changes.push(Change::Upsert(dossier(&mut rng, codes[k].clone(), stale)));
            continue;
        }
        versions[k] += 1 + rng.below(3) as i64;
        if roll < 5 {
            live[k] = false;
            changes.push(Change::Delete {
                code: codes[k].clone(),
                version: versions[k],
            });
        } else {
            live[k] = true;
            changes.push(Change::Upsert(dossier(
                &mut rng,
                codes[k].clone(),
                versions[k],
            )));
        }
    }
    let expected = (0..args.codes)
        .filter(|k| live[*k])
        .map(|k| (codes[k].to_string(), versions[k]))
        .collect();
    let batches = changes.chunks(args.batch).map(<[Change]>::to_vec).collect();
    (batches, expected)
}

fn checkpoint(batch: usize) -> SyncCheckpoint {
    SyncCheckpoint {
        source: "feed".into(),
        epoch: "bench".into(),
        stage: SyncStage::Streaming {
            cursor: format!("c{batch}"),
        },
        generation: 1,
        pending: Some(0),
    }
}

async fn run(
    name: &str,
    url: &str,
    batches: &[Vec<Change>],
    expected: &HashMap<String, i64>,
) -> anyhow::Result<()> {
    let store = ReadModel::open(url).await?;
    let mut total = ApplyReport::default();
    let mut latencies: Vec<Duration> = Vec::with_capacity(batches.len());
    let started = Instant::now();
    for (i, batch) in batches.iter().enumerate() {
        let t = Instant::now();
        let report = store
            .apply(batch, ApplyMode::Guarded, Some(&checkpoint(i)))
            .await?;
        latencies.push(t.elapsed());
        total.written += report.written;
        total.deleted += report.deleted;
        total.unchanged += report.unchanged;
    }
    let elapsed = started.elapsed();
    let changes: usize = batches.iter().map(Vec::len).sum();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{name:>8}: {changes} changes in {:.2} s = {:>7.0} changes/s \
         (batch p50 {:.1} ms, p99 {:.1} ms; written {}, deleted {}, unchanged {})",
        elapsed.as_secs_f64(),
        changes as f64 / elapsed.as_secs_f64(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        total.written,
        total.deleted,
        total.unchanged,
    );
    let live: HashMap<String, i64> = store.live_versions().await?.into_iter().collect();
    if &live != expected {
        bail!(
            "{name}: {} live dossiers, {} expected, or other versions",
            live.len(),
            expected.len()
        );
    }
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let (batches, expected) = workload(&args);
    println!(
        "apply_changes: {} changes over {} dossiers, batches of {}, streaming, a checkpoint per batch",
        args.changes, args.codes, args.batch
    );
    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}/read.db", dir.path().display());
    run("sqlite", &sqlite, &batches, &expected).await?;
    match &args.postgres {
        Some(maintenance) => {
            let db = temp_postgres::TempDatabase::create(maintenance).await;
            let outcome = run("postgres", &db.url, &batches, &expected).await;
            db.drop().await;
            outcome?;
        }
        None => println!(
            "postgres: skipped (set {} or pass --postgres URL)",
            temp_postgres::ENV
        ),
    }
    Ok(())
}
