//! What the simulated citizens send, and who they are.
//!
//! - [`Mix`]: the shares of message kinds (`known=60,typo=25,unknown=10,help=5`).
//! - [`TextGenerator`]: builds texts of each kind from the dossier codes of a
//!   JSON Lines file in the portal's shape (`MaHoSo`): a known code typed
//!   canonically behind a keyword, a known code typed badly (any case, odd
//!   separators or none, `O` for `0`, `l` for `1`, leading zeros of the order
//!   number left out, Vietnamese keywords with or without diacritics), a
//!   well-formed code nobody has, or a text with no code at all.
//! - [`SenderPlan`]: one distinct sender number per message, spread over the
//!   Vietnamese mobile prefixes, and the way back from a reply's destination
//!   to the message it answers — without a map, so matching costs nothing.
//! - [`SplitMix64`]: a small seeded generator, so a run can be repeated.

use std::collections::HashSet;
use std::fmt;
use std::io::BufRead;
use std::str::FromStr;

use crate::sms_text;

use super::LoadgenError;

/// A small, fast, seeded pseudo-random generator (SplitMix64). Not for
/// anything secret: it only makes runs repeatable.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough for picking texts.
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The kinds of message a simulated citizen sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextKind {
    /// A code from the file, typed canonically behind a keyword.
    Known,
    /// A code from the file, typed badly (still a code a reader would recognise).
    Typo,
    /// A well-formed code that is not in the file.
    Unknown,
    /// No code at all: a greeting, a question mark, a keyword alone.
    Help,
}

impl TextKind {
    /// Every kind, in the order [`Mix`] lists them.
    pub const ALL: [TextKind; 4] = [
        TextKind::Known,
        TextKind::Typo,
        TextKind::Unknown,
        TextKind::Help,
    ];

    /// The name used in `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            TextKind::Known => "known",
            TextKind::Typo => "typo",
            TextKind::Unknown => "unknown",
            TextKind::Help => "help",
        }
    }
}

/// Relative weights of the message kinds, e.g. `known=60,typo=25,unknown=10,help=5`.
/// Kinds left out weigh 0; the weights need not add up to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 4],
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            weights: [60, 25, 10, 5],
        }
    }
}

impl Mix {
    /// The weight of `kind`.
    pub fn weight(&self, kind: TextKind) -> u32 {
        self.weights[kind as usize]
    }

    /// Picks a kind with the configured odds.
    fn choose(&self, rng: &mut SplitMix64) -> TextKind {
        let total: u64 = self.weights.iter().map(|&w| u64::from(w)).sum();
        let mut roll = rng.below(total);
        for kind in TextKind::ALL {
            let w = u64::from(self.weight(kind));
            if roll < w {
                return kind;
            }
            roll -= w;
        }
        TextKind::Help
    }
}

impl FromStr for Mix {
    type Err = LoadgenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem: String| LoadgenError::Mix {
            given: s.to_owned(),
            problem,
        };
        let mut weights = [0u32; 4];
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("{item:?} is not name=weight")))?;
            let kind = TextKind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(|| {
                    bad(format!(
                        "unknown kind {name:?} (known, typo, unknown, help)"
                    ))
                })?;
            weights[kind as usize] = value
                .trim()
                .parse()
                .map_err(|_| bad(format!("{value:?} is not a whole number")))?;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err(bad("every weight is 0".to_owned()));
        }
        Ok(Mix { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = TextKind::ALL
            .iter()
            .map(|k| format!("{}={}", k.name(), self.weight(*k)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A message ready for the wire: its text, data_coding and user data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    /// What kind of message it is.
    pub kind: TextKind,
    /// The text as the citizen typed it.
    pub text: String,
    /// 0 (GSM-7, one septet per byte) or 8 (UCS-2).
    pub data_coding: u8,
    /// The encoded text.
    pub short_message: Vec<u8>,
}

impl EncodedText {
    fn new(kind: TextKind, text: String) -> Self {
        let (data_coding, short_message) = if sms_text::is_gsm7(&text) {
            (0, sms_text::gsm7_encode_unpacked(&text))
        } else {
            (8, sms_text::ucs2_encode(&text))
        };
        EncodedText {
            kind,
            text,
            data_coding,
            short_message,
        }
    }
}

/// A dossier code split into the parts people type differently.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CodeParts {
    /// `000.00.12.H58` → ["000", "00", "12", "H58"].
    agency: Vec<String>,
    /// `240315`.
    date: String,
    /// `0007`.
    order: String,
}

impl CodeParts {
    fn split(code: &str) -> Option<Self> {
        let mut parts = code.trim().split('-');
        let (Some(agency), Some(date), Some(order), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let agency: Vec<String> = agency.split('.').map(str::to_owned).collect();
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !(3..=4).contains(&agency.len()) || !digits(date, 6) || !digits(order, 4) {
            return None;
        }
        Some(CodeParts {
            agency,
            date: date.to_owned(),
            order: order.to_owned(),
        })
    }

    fn canonical(&self) -> String {
        format!("{}-{}-{}", self.agency.join("."), self.date, self.order)
    }
}

/// Keywords typed before a canonical code.
const KEYWORDS: [&str; 6] = ["TC ", "TC ", "tc ", "HS ", "Tra cuu ", "MHS "];
/// Keywords typed before a badly typed code (some glued to it, some accented).
const SLOPPY_KEYWORDS: [&str; 9] = [
    "tc ",
    "Tc",
    "TC",
    "tra cuu ho so ",
    "tra cứu hồ sơ ",
    "Tra cứu ",
    "ma ho so: ",
    "hs ",
    "",
];
/// What some people add after the code.
const TRAILERS: [&str; 7] = ["", "", "", " cam on", " ạ", ".", " nhé"];
/// Separators typed between the groups of a code.
const SEPARATORS: [&str; 9] = [" ", " ", ",", "_", "/", "-", ".", " - ", ":"];
/// Texts without a code.
const HELP_TEXTS: [&str; 10] = [
    "?",
    "xin chào",
    "xin chao",
    "HELP",
    "huong dan",
    "alo",
    "TC",
    "tra cuu ho so",
    "Hồ sơ của tôi đến đâu rồi?",
    "ho so cua toi sao roi",
];

/// Builds citizens' texts from a list of dossier codes.
#[derive(Debug, Clone)]
pub struct TextGenerator {
    codes: Vec<CodeParts>,
    known: HashSet<String>,
    mix: Mix,
}

impl TextGenerator {
    /// A generator over `codes` (canonical, as in `MaHoSo`); codes in another
    /// layout are skipped.
    pub fn new(codes: &[String], mix: Mix) -> Result<Self, LoadgenError> {
        let parts: Vec<CodeParts> = codes.iter().filter_map(|c| CodeParts::split(c)).collect();
        if parts.is_empty() {
            return Err(LoadgenError::NoCodes);
        }
        let known = parts.iter().map(CodeParts::canonical).collect();
        Ok(TextGenerator {
            codes: parts,
            known,
            mix,
        })
    }

    /// Reads the codes (`MaHoSo`) of a JSON Lines file in the portal's shape.
    pub fn read_codes(reader: impl BufRead) -> Result<Vec<String>, LoadgenError> {
        let mut codes = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(LoadgenError::ReadDossiers)?;
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(&line).map_err(|source| LoadgenError::DossierLine {
                    line: n + 1,
                    source,
                })?;
            if let Some(code) = value.get("MaHoSo").and_then(|v| v.as_str()) {
                codes.push(code.to_owned());
            }
        }
        Ok(codes)
    }

    /// One message of a kind drawn from the mix.
    pub fn generate(&self, rng: &mut SplitMix64) -> EncodedText {
        let kind = self.mix.choose(rng);
        EncodedText::new(kind, self.text_of(kind, rng))
    }

    /// A text of `kind`.
    pub fn text_of(&self, kind: TextKind, rng: &mut SplitMix64) -> String {
        match kind {
            TextKind::Known => {
                let code = rng.pick(&self.codes).canonical();
                match rng.below(4) {
                    0 => code,
                    _ => format!("{}{code}", rng.pick(&KEYWORDS)),
                }
            }
            TextKind::Typo => self.typo(rng),
            TextKind::Unknown => self.unknown(rng),
            TextKind::Help => (*rng.pick(&HELP_TEXTS)).to_owned(),
        }
    }

    /// A known code as people mistype it; [`crate::domain::DossierCode::extract`]
    /// still finds the code in it.
    fn typo(&self, rng: &mut SplitMix64) -> String {
        let code = rng.pick(&self.codes).clone();
        let glued = rng.chance(15);
        let mut sep = || -> &'static str {
            if glued {
                ""
            } else {
                SEPARATORS[rng.below(SEPARATORS.len() as u64) as usize]
            }
        };
        let mut groups: Vec<String> = code.agency.clone();
        let agency_seps: Vec<&str> = (1..groups.len()).map(|_| sep()).collect();
        let date_sep = sep();
        let order_sep = sep();
        let mut date = code.date.clone();
        let mut order = code.order.clone();
        // Leading zeros of the order number go when something separates it.
        if !glued && rng.chance(40) {
            let trimmed = order.trim_start_matches('0');
            order = if trimmed.is_empty() { "0" } else { trimmed }.to_owned();
        }
        // O for 0 and l for 1, only where digits must be (date and order).
        if rng.chance(30) {
            date = look_alike(&date, rng);
            order = look_alike(&order, rng);
        }
        let mut text = String::new();
        for (i, g) in groups.iter_mut().enumerate() {
            if i > 0 {
                text.push_str(agency_seps[i - 1]);
            }
            text.push_str(g);
        }
        text.push_str(date_sep);
        text.push_str(&date);
        text.push_str(order_sep);
        text.push_str(&order);
        let text = match rng.below(3) {
            0 => text.to_lowercase(),
            1 => text.to_uppercase(),
            _ => text,
        };
        let keyword = rng.pick(&SLOPPY_KEYWORDS);
        // A keyword glued to the code only when the code starts with digits.
        let keyword = if keyword.ends_with(char::is_alphabetic)
            && !text.starts_with(|c: char| c.is_ascii_digit())
        {
            "tc "
        } else {
            keyword
        };
        format!("{keyword}{text}{}", rng.pick(&TRAILERS))
    }

    /// A well-formed code no dossier in the file has.
    fn unknown(&self, rng: &mut SplitMix64) -> String {
        loop {
            let base = rng.pick(&self.codes);
            let year = 20 + rng.below(7);
            let month = 1 + rng.below(12);
            let day = 1 + rng.below(28);
            let order = 1 + rng.below(9999);
            let code = format!(
                "{}-{year:02}{month:02}{day:02}-{order:04}",
                base.agency.join(".")
            );
            if !self.known.contains(&code) {
                return format!("{}{code}", rng.pick(&KEYWORDS));
            }
        }
    }
}

/// Replaces some `0` with `O`/`o` and some `1` with `l`/`I`.
fn look_alike(digits: &str, rng: &mut SplitMix64) -> String {
    digits
        .chars()
        .map(|c| match c {
            '0' if rng.chance(50) => *rng.pick(&['O', 'o']),
            '1' if rng.chance(50) => *rng.pick(&['l', 'I']),
            other => other,
        })
        .collect()
}

/// Two-digit national mobile prefixes (after the trunk 0) of Vietnam's
/// carriers: Viettel, VinaPhone, MobiFone, Vietnamobile, Gmobile.
pub const MOBILE_PREFIXES: [u8; 34] = [
    32, 33, 34, 35, 36, 37, 38, 39, 86, 96, 97, 98, // Viettel
    81, 82, 83, 84, 85, 88, 91, 94, // VinaPhone
    70, 76, 77, 78, 79, 89, 90, 93, // MobiFone
    52, 56, 58, 92, // Vietnamobile
    59, 99, // Gmobile
];

/// Subscriber numbers have 7 digits after the prefix.
const SUBSCRIBERS: u64 = 10_000_000;
/// Scrambles the subscriber part so that numbers do not look sequential;
/// coprime with 10, so every index has its own number.
const SCRAMBLE: u64 = 7_654_321;
const SCRAMBLE_OFFSET: u64 = 1_234_567;

/// One distinct sender per message index (`84` + prefix + 7 digits), and
/// the way back from a number to its index.
#[derive(Debug, Clone)]
pub struct SenderPlan {
    /// Index 0 of this run is global index `offset`.
    offset: u64,
    /// Messages in the run.
    count: u64,
    /// Prefix → position in [`MOBILE_PREFIXES`] (255 = not ours).
    prefix_slot: [u8; 100],
    /// The inverse of [`SCRAMBLE`] modulo [`SUBSCRIBERS`].
    unscramble: u64,
}

impl SenderPlan {
    /// Senders for `count` messages, starting at global index `offset` (a
    /// second run against the same gateway uses fresh numbers with another
    /// offset, so neither redelivery detection nor rate limits see a
    /// repeat).
    pub fn new(offset: u64, count: u64) -> Result<Self, LoadgenError> {
        let capacity = SUBSCRIBERS * MOBILE_PREFIXES.len() as u64;
        if offset.saturating_add(count) > capacity {
            return Err(LoadgenError::TooManySenders { capacity });
        }
        let mut prefix_slot = [u8::MAX; 100];
        for (i, p) in MOBILE_PREFIXES.iter().enumerate() {
            prefix_slot[*p as usize] = i as u8;
        }
        Ok(SenderPlan {
            offset,
            count,
            prefix_slot,
            unscramble: mod_inverse(SCRAMBLE, SUBSCRIBERS),
        })
    }

    /// The sender of message `index` in international form (`84912345678`).
    pub fn sender(&self, index: u64) -> String {
        let global = self.offset + index;
        let prefix = MOBILE_PREFIXES[(global % MOBILE_PREFIXES.len() as u64) as usize];
        let q = global / MOBILE_PREFIXES.len() as u64;
        let subscriber = (q * SCRAMBLE + SCRAMBLE_OFFSET) % SUBSCRIBERS;
        format!("84{prefix:02}{subscriber:07}")
    }

    /// The message index whose sender is `number`, in any usual writing
    /// (`84…`, `+84…`, `0…`); `None` for a number that is not one of this run's.
    pub fn index_of(&self, number: &str) -> Option<u64> {
        // The last 9 digits are the national number without the trunk 0.
        let mut national = [0u8; 9];
        let mut filled = 0;
        for b in number.bytes().rev().filter(u8::is_ascii_digit) {
            if filled == 9 {
                break;
            }
            national[8 - filled] = b - b'0';
            filled += 1;
        }
        if filled < 9 {
            return None;
        }
        let prefix = usize::from(national[0]) * 10 + usize::from(national[1]);
        let slot = self.prefix_slot[prefix];
        if slot == u8::MAX {
            return None;
        }
        let subscriber = national[2..]
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d));
        let q = ((subscriber + SUBSCRIBERS - SCRAMBLE_OFFSET) % SUBSCRIBERS) * self.unscramble
            % SUBSCRIBERS;
        let global = q * MOBILE_PREFIXES.len() as u64 + u64::from(slot);
        let index = global.checked_sub(self.offset)?;
        (index < self.count).then_some(index)
    }
}

/// `a`⁻¹ modulo `m` for coprime `a` and `m` (extended Euclid).
fn mod_inverse(a: u64, m: u64) -> u64 {
    let (mut old_r, mut r) = (i128::from(a), i128::from(m));
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    old_s.rem_euclid(i128::from(m)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DossierCode, Msisdn};

    fn sample_codes() -> Vec<String> {
        let file = std::fs::File::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/sample-dossiers.jsonl"
        ))
        .unwrap();
        TextGenerator::read_codes(std::io::BufReader::new(file)).unwrap()
    }

    #[test]
    fn the_sample_file_gives_its_codes() {
        let codes = sample_codes();
        assert_eq!(codes.len(), 52);
        assert_eq!(codes[0], "000.00.12.H58-240315-0007");
    }

    #[test]
    fn a_bad_line_is_named() {
        let err =
            TextGenerator::read_codes("{\"MaHoSo\": \"x\"}\nnot json\n".as_bytes()).unwrap_err();
        assert!(
            matches!(err, LoadgenError::DossierLine { line: 2, .. }),
            "{err}"
        );
        assert!(matches!(
            TextGenerator::new(&["nonsense".to_owned()], Mix::default()),
            Err(LoadgenError::NoCodes)
        ));
    }

    #[test]
    fn every_kind_reads_as_intended() {
        let codes = sample_codes();
        let generator = TextGenerator::new(&codes, Mix::default()).unwrap();
        let known: HashSet<&str> = codes.iter().map(String::as_str).collect();
        let mut rng = SplitMix64::new(7);
        for _ in 0..3000 {
            for kind in TextKind::ALL {
                let text = generator.text_of(kind, &mut rng);
                let found = DossierCode::extract(&text);
                match kind {
                    TextKind::Known | TextKind::Typo => {
                        let code = found.unwrap_or_else(|e| panic!("{text:?}: {e}"));
                        assert!(known.contains(code.as_str()), "{text:?} → {code}");
                    }
                    TextKind::Unknown => {
                        let code = found.unwrap_or_else(|e| panic!("{text:?}: {e}"));
                        assert!(!known.contains(code.as_str()), "{text:?}");
                    }
                    TextKind::Help => assert!(found.is_err(), "{text:?}"),
                }
            }
        }
    }

    #[test]
    fn typos_are_varied() {
        let generator = TextGenerator::new(&sample_codes(), Mix::default()).unwrap();
        let mut rng = SplitMix64::new(1);
        let texts: Vec<String> = (0..500)
            .map(|_| generator.text_of(TextKind::Typo, &mut rng))
            .collect();
        assert!(texts.iter().any(|t| t.contains('O') || t.contains('o')));
        assert!(texts.iter().any(|t| t.contains(['l', 'I'])));
        assert!(texts.iter().any(|t| t.contains('_')));
        assert!(texts.iter().any(|t| t.contains("hồ sơ")));
        assert!(texts.iter().any(|t| !t.contains(['.', '-', ' ', '_'])));
        let distinct: HashSet<&String> = texts.iter().collect();
        assert!(distinct.len() > 400, "{}", distinct.len());
    }

    #[test]
    fn the_mix_is_parsed_and_followed() {
        let mix: Mix = "known=50, help=50".parse().unwrap();
        assert_eq!(mix.weight(TextKind::Typo), 0);
        assert_eq!(mix.to_string(), "known=50,typo=0,unknown=0,help=50");
        assert!("known=x".parse::<Mix>().is_err());
        assert!("nope=3".parse::<Mix>().is_err());
        assert!("known=0".parse::<Mix>().is_err());
        let generator = TextGenerator::new(&sample_codes(), mix).unwrap();
        let mut rng = SplitMix64::new(3);
        let mut help = 0;
        for _ in 0..10_000 {
            match generator.generate(&mut rng).kind {
                TextKind::Help => help += 1,
                TextKind::Known => {}
                other => panic!("{other:?} has weight 0"),
            }
        }
        assert!((4_500..5_500).contains(&help), "{help}");
    }

    #[test]
    fn texts_are_encoded_as_a_handset_would() {
        let plain = EncodedText::new(TextKind::Known, "TC 000_1".to_owned());
        assert_eq!(plain.data_coding, 0);
        assert_eq!(plain.short_message, b"TC 000\x111");
        let accented = EncodedText::new(TextKind::Help, "tra cứu".to_owned());
        assert_eq!(accented.data_coding, 8);
        assert_eq!(accented.short_message.len(), 14);
    }

    #[test]
    fn senders_are_distinct_vietnamese_mobiles_and_map_back() {
        let plan = SenderPlan::new(1_000, 50_000).unwrap();
        let mut seen = HashSet::new();
        for i in (0..50_000).step_by(7) {
            let sender = plan.sender(i);
            assert!(seen.insert(sender.clone()), "{sender} twice");
            let msisdn = Msisdn::parse(&sender).unwrap();
            assert!(msisdn.is_vietnamese(), "{sender}");
            assert_eq!(msisdn.as_international(), sender);
            assert_eq!(plan.index_of(&sender), Some(i));
            assert_eq!(plan.index_of(&format!("+{sender}")), Some(i));
            assert_eq!(plan.index_of(&msisdn.national()), Some(i));
        }
        // Another run's numbers, short codes and strangers are not ours.
        let other = SenderPlan::new(0, 1_000).unwrap();
        assert_eq!(plan.index_of(&other.sender(5)), None);
        assert_eq!(plan.index_of("8058"), None);
        assert_eq!(plan.index_of("84241234567"), None);
        assert!(SenderPlan::new(u64::MAX - 5, 10).is_err());
    }
}
