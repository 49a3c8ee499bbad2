//! Differential tests: the hand-written scanner (`emnify::scan`) against the serde decoder
//! (`emnify::model`), which is the oracle.
//!
//! For every body, `serde_decode_event_list` and `decode_event_list` (and the `object_or_list`
//! pair) must both fail, or both succeed with equal `Vec<DecodedEvent>` (fingerprints included).
//! Bodies come from a generator of quirky emnify pages (field order, duplicates, missing fields,
//! nulls, numbers as strings / floats / negatives / huge, escapes, unicode, junk), from mutations
//! of such pages (`decoding_tools::mutation`: truncation, flipped / inserted / deleted bytes,
//! control characters, invalid UTF-8, spliced fragments, renamed keys, replaced values), from deep
//! nesting at every position, from the example payloads on disk and from hand-written edge cases.
//!
//! Every property runs a fixed number of cases from a fixed seed (`PROPTEST_RNG_SEED=<u64>`
//! explores another); nothing is persisted. The generator is driven by a proptest-chosen `u64`
//! seed (a small deterministic RNG builds the JSON text), so a failure prints the seed and the body.
//!
//! Deliberate divergences between the two: none. Error *categories and positions* are not
//! compared (serde_json reports e.g. "invalid type" where the scanner says "unexpected JSON
//! shape"); only Ok/Err and the decoded values are.

mod decoding_tools;

use std::path::Path;

use decoding_tools::{apply, files_under, fixtures_dir, mutation, proptest_config, INTERESTING};
use emnify_exporter::emnify::model::{serde_decode_event_list, serde_decode_event_object_or_list};
use emnify_exporter::emnify::scan::{decode_event_list, decode_event_object_or_list};
use emnify_exporter::emnify::{DecodedEvent, MAX_EVENT_ID};
use proptest::prelude::*;

const CASES_PAGES: u32 = 1500;
const CASES_MUTATIONS: u32 = 3000;
const CASES_NESTING: u32 = 300;
const CASES_SCALARS: u32 = 3000;

const SEED: u64 = 0x7061_7269_7479; // "parity"

/// Event ids around the edges of the signed 64-bit range emnify documents (valid: integers in
/// 0..=2^63 - 1), as JSON number text; the generator also puts them in strings.
const ID_EDGES: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "-5",
    "9223372036854775806",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "9.2e18",
    "9.223372036854775e18",
    "9223372036854775807.0",
    "1e19",
    "5.0",
    "5.5",
    "0.0",
    "-0.0",
];

// ---------------------------------------------------------------------------------------------
// The parity check
// ---------------------------------------------------------------------------------------------

fn compare<E1: std::fmt::Display, E2: std::fmt::Display>(
    what: &str,
    body: &[u8],
    serde: Result<Vec<DecodedEvent<'_>>, E1>,
    scan: Result<Vec<DecodedEvent<'_>>, E2>,
) -> Result<(), String> {
    let shown = || {
        let text = String::from_utf8_lossy(body);
        if text.len() > 600 {
            format!(
                "{}... ({} bytes)",
                &text[..text.char_indices().nth(600).map_or(text.len(), |(i, _)| i)],
                body.len()
            )
        } else {
            format!("{text:?}")
        }
    };
    match (serde, scan) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Err(_), Err(_)) => Ok(()),
        (Ok(a), Ok(b)) => {
            let at = a.iter().zip(&b).position(|(x, y)| x != y);
            Err(format!(
                "{what}: values differ (serde {} elements, scan {}, first difference at {at:?}: {:?} vs {:?}) for {}",
                a.len(),
                b.len(),
                at.map(|i| &a[i]),
                at.map(|i| &b[i]),
                shown()
            ))
        }
        (Ok(_), Err(e)) => Err(format!("{what}: serde accepts, scanner rejects ({e}) for {}", shown())),
        (Err(e), Ok(_)) => Err(format!("{what}: serde rejects ({e}), scanner accepts for {}", shown())),
    }
}

/// Both entry points agree with their serde counterparts on `body`, and no id they produce is
/// above i64::MAX (emnify's ids are signed 64-bit).
fn parity(body: &[u8]) -> Result<(), String> {
    compare("list", body, serde_decode_event_list(body), decode_event_list(body))?;
    compare("object_or_list", body, serde_decode_event_object_or_list(body), decode_event_object_or_list(body))?;
    let Ok(list) = decode_event_object_or_list(body) else { return Ok(()) };
    for item in &list {
        let id = match item {
            Ok(event) => Some(event.id),
            Err(bad) => bad.id,
        };
        if id.is_some_and(|id| id > MAX_EVENT_ID) {
            return Err(format!("id {id:?} above i64::MAX in {:?}", String::from_utf8_lossy(body)));
        }
    }
    Ok(())
}

#[track_caller]
fn assert_parity(body: &[u8]) {
    if let Err(e) = parity(body) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// A deterministic generator of quirky pages
// ---------------------------------------------------------------------------------------------

struct Gen {
    state: u64,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen { state: seed ^ 0x9E37_79B9_7F4A_7C15 }
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len())]
    }

    /// Whitespace between tokens: usually none, sometimes any of the four JSON whitespace bytes.
    fn ws(&mut self, out: &mut String) {
        if self.chance(12) {
            for _ in 0..1 + self.below(3) {
                out.push(*self.pick(&[' ', '\n', '\t', '\r']));
            }
        }
    }

    fn number(&mut self) -> String {
        const FIXED: &[&str] = &[
            "0",
            "-0",
            "1",
            "7",
            "-1",
            "-7",
            "0.0",
            "-0.0",
            "1.0",
            "1.5",
            "7.25",
            "2.5e1",
            "1e2",
            "1E2",
            "1e+2",
            "1e-2",
            "100e-2",
            "4294967295",
            "4294967296",
            "9223372036854775806",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775807",
            "-9223372036854775808",
            "-9223372036854775809",
            "-5",
            "9.2e18",
            "9.223372036854775e18",
            "9223372036854775807.0",
            "9223372036854775808.0",
            "1e19",
            "18446744073709551615",
            "18446744073709551616",
            "18446744073709551615.0",
            "18446744073709551616.0",
            "18446744073709550000.0",
            "1.8446744073709552e19",
            "123456789012345678901234567890",
            "-123456789012345678901234567890",
            "1e308",
            "1.7976931348623157e308",
            "1e309",
            "-1e400",
            "1e400",
            "0e400",
            "1e-400",
            "-1e-400",
            "1e99999999999999999999",
            "0.1e-99999999999999999999",
            "9007199254740993",
            "9007199254740993.0",
            "0.30000000000000004",
            "3.0000000000000000000000001",
            "2.9999999999999999999999999",
            "1.00000000000000000000000000000000000000000001e3",
            "12345678901234567890.5",
        ];
        match self.below(4) {
            0 => self.pick(FIXED).to_string(),
            1 => self.below(100_000).to_string(),
            2 => format!("{}", self.next()),
            _ => {
                let mut s = String::new();
                if self.chance(30) {
                    s.push('-');
                }
                s.push_str(&(1 + self.below(999_999)).to_string());
                if self.chance(50) {
                    s.push('.');
                    s.push_str(&self.below(1000).to_string());
                }
                if self.chance(40) {
                    s.push(*self.pick(&['e', 'E']));
                    if self.chance(50) {
                        s.push(*self.pick(&['+', '-']));
                    }
                    s.push_str(&self.below(30).to_string());
                }
                s
            }
        }
    }

    /// The inside of a JSON string (without quotes), well-formed but quirky.
    fn string_body(&mut self) -> String {
        const PIECES: &[&str] = &[
            "Update location",
            "Info",
            "Demo Company",
            "a",
            " ",
            "Ünïcödé",
            "日本",
            "😀",
            "\\n",
            "\\t",
            "\\\"",
            "\\\\",
            "\\/",
            "\\b",
            "\\f",
            "\\r",
            "\\u0041",
            "\\u00e9",
            "\\u20AC",
            "\\ud83d\\ude00",
            "\\uD83D\\uDE00",
            "\\ud800",
            "\\udc00",
            "\\ud800\\u0041",
            "\\ud800\\n",
            "\\ud800\\ud800",
            "\\u0000",
            "true",
            "TRUE",
            " yes ",
            "1",
            "0",
            "42",
            " 42 ",
            "+42",
            "-3",
            "18446744073709551616",
            "\u{a0}7\u{2003}",
        ];
        let mut s = String::new();
        for _ in 0..self.below(4) {
            let piece: &str = self.pick::<&str>(PIECES);
            s.push_str(piece);
        }
        s
    }

    fn string(&mut self) -> String {
        format!("\"{}\"", self.string_body())
    }

    fn timestamp(&mut self) -> String {
        let body = match self.below(6) {
            0..=2 => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                *self.pick(&[1970, 2000, 2021, 2024, 2026, 1900, 2100, 9999, 0]),
                self.below(14),
                self.below(33),
                self.below(26),
                self.below(61),
                self.below(62),
                self.below(1000)
            ),
            3 => format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                2021,
                1 + self.below(12),
                1 + self.below(28),
                self.below(24),
                self.below(60),
                self.below(60)
            ),
            4 => (*self.pick(&[
                "2017-10-26T07:28:00.000+0000",
                "2021-10-27T15:17:23Z",
                "5/8/2017 10:56:25 AM",
                "2026-11-27T16:58:37.284Z ",
                "2026-11-27t16:58:37.284z",
                "2026-11-27T16:58:37.28Z",
                "2026-11-27T16:58:37.2845Z",
                "2026-02-29T00:00:00.000Z",
                "2024-02-29T23:59:60.999Z",
                "garbage",
                "",
            ]))
            .to_string(),
            _ => return self.number(),
        };
        format!("\"{body}\"")
    }

    /// Any JSON value, nested up to `depth`.
    fn junk(&mut self, depth: usize) -> String {
        let kind = if depth == 0 { self.below(6) } else { self.below(8) };
        match kind {
            0 => "null".into(),
            1 => self.pick(&["true", "false"]).to_string(),
            2 | 3 => self.number(),
            4 | 5 => self.string(),
            6 => {
                let mut s = String::from("[");
                for i in 0..self.below(4) {
                    if i > 0 {
                        s.push(',');
                    }
                    self.ws(&mut s);
                    s.push_str(&self.junk(depth - 1));
                }
                s.push(']');
                s
            }
            _ => {
                let mut s = String::from("{");
                for i in 0..self.below(4) {
                    if i > 0 {
                        s.push(',');
                    }
                    self.ws(&mut s);
                    let key = self.key();
                    s.push_str(&key);
                    s.push(':');
                    self.ws(&mut s);
                    s.push_str(&self.junk(depth - 1));
                }
                s.push('}');
                s
            }
        }
    }

    /// A key, sometimes one that matters, sometimes escaped into one.
    fn key(&mut self) -> String {
        const KEYS: &[&str] = &[
            "id",
            "name",
            "description",
            "timestamp",
            "alert",
            "event_type",
            "event_source",
            "event_severity",
            "organisation",
            "endpoint",
            "sim",
            "imsi",
            "user",
            "x",
            "",
            "\\u0069d",
            "i\\u0064",
            "na\\u006De",
            "descr\\u0069ption",
            "\\u0069\\u0064\\u0000",
            "id ",
            "ID",
            "\\ud800",
            "\\ud800id",
            "é",
            "event_typ",
            "event_types",
        ];
        format!("\"{}\"", self.pick(KEYS))
    }

    /// A value for a sub-object position (`event_type`, `organisation`, ...).
    fn reference(&mut self) -> String {
        match self.below(10) {
            0 => "null".into(),
            1 => self.number(),
            2 => self.string(),
            3 => self.junk(2),
            _ => {
                let mut fields = Vec::new();
                if self.chance(85) {
                    fields.push(format!("\"id\":{}", self.id_value()));
                }
                if self.chance(60) {
                    fields.push(format!("\"name\":{}", self.text_value()));
                }
                if self.chance(60) {
                    fields.push(format!("\"description\":{}", self.text_value()));
                }
                if self.chance(15) {
                    fields.push(format!("{}:{}", self.key(), self.junk(2)));
                }
                self.object(fields)
            }
        }
    }

    fn id_value(&mut self) -> String {
        match self.below(14) {
            0..=5 => (1 + self.below(5000)).to_string(),
            6 => format!("\"{}\"", self.below(5000)),
            7 => format!("\" {} \"", self.below(5000)),
            8 => self.number(),
            9 => self.string(),
            10 => "null".into(),
            11 => self.pick(ID_EDGES).to_string(),
            12 => format!("\"{}\"", self.pick(ID_EDGES)),
            _ => self.junk(2),
        }
    }

    fn text_value(&mut self) -> String {
        match self.below(8) {
            0..=4 => self.string(),
            5 => self.number(),
            6 => "null".into(),
            _ => self.junk(2),
        }
    }

    fn bool_value(&mut self) -> String {
        match self.below(8) {
            0..=2 => self.pick(&["true", "false"]).to_string(),
            3 => self.pick(&["0", "1", "2", "-1", "0.0", "-0", "0.5", "1e400"]).to_string(),
            4 => format!("\"{}\"", self.pick(&["true", "TRUE", " yes", "Yes", "1", "0", "no", "truex", ""])),
            5 => "null".into(),
            6 => self.string(),
            _ => self.junk(2),
        }
    }

    /// Joins `"key":value` fields into an object, shuffled, sometimes with a duplicate.
    fn object(&mut self, mut fields: Vec<String>) -> String {
        for i in (1..fields.len()).rev() {
            let j = self.below(i + 1);
            fields.swap(i, j);
        }
        if !fields.is_empty() && self.chance(10) {
            let dup = fields[self.below(fields.len())].clone();
            fields.insert(self.below(fields.len() + 1), dup);
        }
        let mut s = String::from("{");
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            self.ws(&mut s);
            s.push_str(f);
            self.ws(&mut s);
        }
        s.push('}');
        s
    }

    fn event(&mut self) -> String {
        let mut fields = Vec::new();
        if self.chance(90) {
            fields.push(format!("\"id\":{}", self.id_value()));
        }
        if self.chance(80) {
            fields.push(format!("\"timestamp\":{}", self.timestamp()));
        }
        if self.chance(70) {
            fields.push(format!("\"alert\":{}", self.bool_value()));
        }
        if self.chance(80) {
            fields.push(format!("\"description\":{}", self.text_value()));
        }
        if self.chance(90) {
            fields.push(format!("\"event_type\":{}", self.reference()));
        }
        if self.chance(70) {
            fields.push(format!("\"event_source\":{}", self.reference()));
        }
        if self.chance(70) {
            fields.push(format!("\"event_severity\":{}", self.reference()));
        }
        if self.chance(80) {
            fields.push(format!("\"organisation\":{}", self.reference()));
        }
        if self.chance(20) {
            fields.push(format!("\"name\":{}", self.junk(1)));
        }
        for _ in 0..self.below(3) {
            fields.push(format!("{}:{}", self.key(), self.junk(3)));
        }
        self.object(fields)
    }

    fn element(&mut self) -> String {
        if self.chance(90) {
            self.event()
        } else {
            self.junk(2)
        }
    }

    fn page(&mut self) -> String {
        let mut s = String::new();
        self.ws(&mut s);
        s.push('[');
        for i in 0..self.below(8) {
            if i > 0 {
                s.push(',');
            }
            self.ws(&mut s);
            s.push_str(&self.element());
            self.ws(&mut s);
        }
        s.push(']');
        self.ws(&mut s);
        s
    }

    /// A page, or for the object-or-list entry point sometimes a single event.
    fn body(&mut self) -> String {
        if self.chance(15) {
            self.event()
        } else {
            self.page()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(proptest_config(SEED, CASES_PAGES))]

    /// Well-formed quirky pages (and single events): same events, same unreadable records.
    #[test]
    fn generated_pages_agree(seed in any::<u64>()) {
        let body = Gen::new(seed).body();
        prop_assert!(parity(body.as_bytes()).is_ok(), "seed {seed}: {}", parity(body.as_bytes()).unwrap_err());
    }
}

proptest! {
    #![proptest_config(proptest_config(SEED, CASES_MUTATIONS))]

    /// Broken pages: both reject, or both accept the same thing.
    #[test]
    fn mutated_pages_agree(seed in any::<u64>(), mutations in prop::collection::vec(mutation(), 1..4)) {
        let mut body = Gen::new(seed).body().into_bytes();
        for m in &mutations {
            apply(&mut body, m);
        }
        prop_assert!(parity(&body).is_ok(), "seed {seed} {mutations:?}: {}", parity(&body).unwrap_err());
    }
}

proptest! {
    #![proptest_config(proptest_config(SEED, CASES_NESTING))]

    /// Deep nesting in every position the decoders treat differently, balanced or cut short.
    #[test]
    fn deep_nesting_agrees(depth in 1usize..300, position in 0usize..9, objects in any::<bool>(), cut in any::<prop::sample::Index>()) {
        let (open, close) = if objects { ("{\"k\":", "}") } else { ("[", "]") };
        let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let body = match position {
            0 => nested.clone(),
            1 => format!("[{nested}]"),
            2 => format!("[{{\"id\":1,\"event_type\":{{\"id\":2}},\"junk\":{nested}}}]"),
            3 => format!("[{{\"id\":{nested},\"event_type\":{{\"id\":2}}}}]"),
            4 => format!("[{{\"id\":1,\"event_type\":{nested}}}]"),
            5 => format!("[{{\"id\":1,\"event_type\":{{\"id\":{nested}}}}}]"),
            6 => format!("[{{\"id\":1,\"event_type\":{{\"id\":2}},\"organisation\":{{\"name\":{nested}}}}}]"),
            7 => format!("[{{\"id\":1,\"event_type\":{{\"id\":2}},\"alert\":{{\"k\":{nested}}}}}]"),
            _ => format!("{{\"id\":1,\"event_type\":{{\"id\":2}},\"description\":[{nested}]}}"),
        };
        prop_assert!(parity(body.as_bytes()).is_ok(), "{}", parity(body.as_bytes()).unwrap_err());
        let cut = cut.index(body.len());
        prop_assert!(parity(&body.as_bytes()[..cut]).is_ok(), "{}", parity(&body.as_bytes()[..cut]).unwrap_err());
    }
}

proptest! {
    #![proptest_config(proptest_config(SEED, CASES_SCALARS))]

    /// Scalars and raw bytes in each field the decoder reads: numbers, strings with any bytes
    /// (control characters, invalid UTF-8, broken escapes), literals.
    #[test]
    fn scalars_in_every_field_agree(seed in any::<u64>(), raw in prop::collection::vec(any::<prop::sample::Index>(), 0..6), field in 0usize..12) {
        let mut g = Gen::new(seed);
        let value = match g.below(4) {
            0 => g.number(),
            1 => g.string(),
            2 => g.timestamp(),
            _ => {
                // A string with arbitrary interesting bytes inside.
                let mut s = vec![b'"'];
                s.extend(g.string_body().bytes());
                for r in &raw {
                    s.push(*r.get(INTERESTING));
                }
                s.push(b'"');
                String::from_utf8_lossy(&s).into_owned() // keeps the test printable; raw bytes below
            }
        };
        let mut raw_value = value.clone().into_bytes();
        if let (Some(first), true) = (raw.first(), value.starts_with('"')) {
            // Splice one raw (possibly non-UTF-8) byte into the string.
            let at = 1 + first.index(raw_value.len() - 1);
            raw_value.insert(at, *first.get(INTERESTING));
        }
        for v in [value.into_bytes(), raw_value] {
            let mut body = Vec::new();
            let pre: &[u8] = match field {
                0 => b"[{\"event_type\":{\"id\":1},\"id\":",
                1 => b"[{\"id\":1,\"event_type\":{\"id\":1},\"timestamp\":",
                2 => b"[{\"id\":1,\"event_type\":{\"id\":1},\"alert\":",
                3 => b"[{\"id\":1,\"event_type\":{\"id\":1},\"description\":",
                4 => b"[{\"id\":1,\"event_type\":",
                5 => b"[{\"id\":1,\"event_type\":{\"id\":",
                6 => b"[{\"id\":1,\"event_type\":{\"id\":1},\"organisation\":{\"name\":",
                7 => b"[{\"id\":1,\"event_type\":{\"id\":1},\"organisation\":{\"description\":",
                8 => b"[{\"id\":1,\"event_type\":{\"id\":1},\"event_source\":{\"name\":",
                9 => b"[{\"id\":1,\"event_type\":{\"id\":1},\"other\":",
                10 => b"[{\"id\":1,\"event_type\":{\"id\":1},\"id\":{\"k\":",
                _ => b"[",
            };
            body.extend_from_slice(pre);
            body.extend_from_slice(&v);
            let post: &[u8] = match field {
                5..=8 | 10 => b"}}]",
                11 => b"]",
                _ => b"}]",
            };
            body.extend_from_slice(post);
            prop_assert!(parity(&body).is_ok(), "{}", parity(&body).unwrap_err());
            // The same bytes as a key of the event, of a sub-object, of a drained and of an ignored object.
            if v.first() == Some(&b'"') {
                for (pre, post) in [
                    (&b"[{"[..], &b":1,\"id\":1,\"event_type\":{\"id\":1}}]"[..]),
                    (b"[{\"id\":1,\"event_type\":{", b":1}}]"),
                    (b"[{\"id\":1,\"event_type\":{\"id\":1},\"alert\":{", b":1}}]"),
                    (b"[{\"id\":1,\"event_type\":{\"id\":1},\"x\":{", b":1}}]"),
                ] {
                    let body = [pre, &v[..], post].concat();
                    prop_assert!(parity(&body).is_ok(), "{}", parity(&body).unwrap_err());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed corpus
// ---------------------------------------------------------------------------------------------

/// Every example payload on disk, whole and cut at every byte (the small ones) or at many points.
#[test]
fn example_files_agree() {
    let mut files = files_under(&fixtures_dir());
    files.extend(files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/emnify/examples")));
    files.sort();
    let mut checked = 0;
    let mut accepted = 0;
    for path in &files {
        let Ok(body) = std::fs::read(path) else { continue };
        if let Err(e) = parity(&body) {
            panic!("{}: {e}", path.display());
        }
        checked += 1;
        accepted += usize::from(decode_event_object_or_list(&body).is_ok());
        // Cut short and with a wrong byte: every position of small files, a sample of large ones.
        let step = (body.len() / 400).max(1);
        for cut in (0..body.len()).step_by(step) {
            if let Err(e) = parity(&body[..cut]) {
                panic!("{} cut at {cut}: {e}", path.display());
            }
            let mut bad = body.clone();
            bad[cut] = b'}';
            if let Err(e) = parity(&bad) {
                panic!("{} with '}}' at {cut}: {e}", path.display());
            }
        }
        // As an element of a list, and the whole list of the file's events twice.
        let wrapped = [&b"["[..], &body, b",", &body, b"]"].concat();
        if let Err(e) = parity(&wrapped) {
            panic!("{} wrapped: {e}", path.display());
        }
    }
    assert!(checked >= 10, "expected the example payloads under tests/fixtures, found {checked} files");
    assert!(accepted >= 10, "expected most examples to decode, {accepted} of {checked} did");
}

/// A realistic 1,000-event simulator page, as the benchmark uses, and cuts of it.
#[test]
fn simulator_page_agrees() {
    use emnify_exporter::simulator::{Simulator, SimulatorConfig};
    let sim = Simulator::new(SimulatorConfig { seed: 7, ..SimulatorConfig::demo() });
    sim.generate(300);
    let page = sim.event_json_batches(300).remove(0);
    let list = decode_event_list(page.as_bytes()).expect("a simulator page scans");
    assert_eq!(list.len(), 300);
    assert_parity(page.as_bytes());
    for cut in (0..page.len()).step_by(997) {
        assert_parity(&page.as_bytes()[..cut]);
    }
}

/// Hand-written edge cases of the JSON grammar and of the lenient field rules.
#[test]
fn edge_cases_agree() {
    let deep_ignored =
        format!("[{{\"id\":1,\"event_type\":{{\"id\":2}},\"x\":{}0{}}}]", "[".repeat(5000), "]".repeat(5000));
    let deep_element = format!("[{}{}]", "[".repeat(5000), "]".repeat(5000));
    let long_string = format!("[{{\"id\":1,\"event_type\":{{\"id\":2}},\"description\":\"{}\"}}]", "x".repeat(100_000));
    let cases: Vec<&[u8]> = vec![
        // Top-level shapes.
        b"",
        b" ",
        b"[]",
        b" [ ] ",
        b"[] x",
        b"[]]",
        b"{}",
        b"{\"id\":1,\"event_type\":{\"id\":2}}",
        b"{\"id\":1,\"event_type\":{\"id\":2}} ",
        b"{\"id\":1,\"event_type\":{\"id\":2}}{}",
        b"null",
        b"1",
        b"\"x\"",
        b"\"\\ud800\"",
        b"1e400",
        b"<html>oops</html>",
        b"\xef\xbb\xbf[]",
        b"[\x00]",
        b"[1]\x00",
        // Elements that are not objects.
        b"[1,\"x\",null,true,false,[],[1,[2]],-1,1.5,{}]",
        b"[1e400]",
        b"[\"\\ud800\"]",
        b"[\"\xff\"]",
        b"[[\"\xff\",\"\\ud800\",1e400]]",
        b"[\"\x01\"]",
        b"[[\"\x01\"]]",
        // Commas, colons, separators.
        b"[{\"id\":1,}]",
        b"[{\"id\":1},]",
        b"[,{\"id\":1}]",
        b"[{\"id\":1}{\"id\":2}]",
        b"[{\"id\" 1}]",
        b"[{\"id\"::1}]",
        b"[{id:1}]",
        b"[{\"id\":1 \"x\":2}]",
        b"[{\"x\":[1,]}]",
        b"[{\"x\":{\"a\":1,}}]",
        b"[{\"x\":{,}}]",
        b"[{\"x\":[1}]}]",
        b"[{\"x\":{\"a\"}}]",
        b"[{\"x\":{1:2}}]",
        b"[ { \"id\" : 1 , \"event_type\" : { \"id\" : 2 } } ]",
        b"[\t{\r\n\"id\"\n:\t1\r,\"event_type\":{\"id\":2}\n}\n]\n",
        b"[{\"id\":1,\"event_type\":{\"id\":2}}\x0b]",
        // Literals.
        b"[nul]",
        b"[nulll]",
        b"[tru]",
        b"[True]",
        b"[{\"alert\":tru}]",
        b"[{\"x\":fals}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"alert\":nul",
        // Numbers.
        b"[01]",
        b"[{\"x\":01}]",
        b"[-]",
        b"[{\"x\":-}]",
        b"[1.]",
        b"[{\"x\":1.}]",
        b"[.5]",
        b"[1e]",
        b"[1e+]",
        b"[{\"x\":1e+}]",
        b"[1.5.3]",
        b"[+1]",
        b"[-01]",
        b"[0x10]",
        b"[{\"id\":-0,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":1,\"event_type\":-0}]",
        b"[{\"id\":1,\"event_type\":{\"id\":-0}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":-0}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":1e2}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":0.1}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":123456789012345678901234567890}]",
        b"[{\"id\":18446744073709551616,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":18446744073709549568,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":18446744073709551615.0,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":1.8446744073709550e19,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":4294967296,\"event_type\":{\"id\":4294967296}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":4294967295.0}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"x\":1e999999}]",
        b"[{\"id\":1e999999,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"alert\":0.0}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"alert\":-0.0}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"alert\":1e-400}]",
        // Strings and escapes.
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"a\\u0000b\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\ud83d\\ude00\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\ud83d\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\ude00\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\ud83d\\n\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\ud83d\\u0041\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\u12\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\u12g4\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\x\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\xc3\xa9\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\xc3\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\xed\xa0\x80\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"\\n\xc3\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"description\":\"tab\there\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"x\":\"tab\there\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"x\":\"\xff\\ud800\\udc00\\udc00\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"x\":\"\\u12\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"x\":{\"\xff\":1}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"x\":{\"\x01\":1}}]",
        // Keys: raw bytes in events and sub-objects, parsed strings in drained objects.
        b"[{\"\\u0069d\":1,\"event_\\u0074ype\":{\"i\\u0064\":2}}]",
        b"[{\"id\\u0000\":1,\"event_type\":{\"id\":2}}]",
        b"[{\"\xff\":1,\"id\":1,\"event_type\":{\"id\":2}}]",
        b"[{\"\x01\":1,\"id\":1,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":1,\"event_type\":{\"\x01\":1,\"id\":2}}]",
        b"[{\"\\ud800\":1,\"id\":1,\"event_type\":{\"id\":2}}]",
        b"[{\"\\udc00\\ud800\":1,\"id\":1,\"event_type\":{\"id\":2}}]",
        b"[{\"\\ud800\\\"\":1,\"id\":1,\"event_type\":{\"id\":2}}]",
        b"[{\"\\q\":1,\"id\":1,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":{\"\xff\":1},\"event_type\":{\"id\":2}}]",
        b"[{\"id\":{\"\x01\":1},\"event_type\":{\"id\":2}}]",
        b"[{\"id\":{\"\\ud800\":1},\"event_type\":{\"id\":2}}]",
        b"[{\"id\":{\"a\":\"\xff\\ud800\"},\"event_type\":{\"id\":2}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":{\"\xff\":1}}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"alert\":{\"\\udc00\":1}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"alert\":[\"\xff\",{\"\xff\":\"\\ud800\"}]}]",
        // Lenient fields, duplicates, precedence.
        b"[{\"id\":1,\"id\":null,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":\"x\",\"id\":\" 7 \",\"event_type\":{\"id\":\"+2\"}}]",
        b"[{\"id\":\"\xc2\xa07\xe2\x80\x83\",\"event_type\":{\"id\":2}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"event_type\":3}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"event_type\":\"3\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2,\"id\":\"x\"}}]",
        b"[{\"id\":1,\"event_type\":[2]}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"organisation\":{\"description\":\"d\",\"name\":\"n\"}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"organisation\":{\"name\":\"n\",\"description\":\"d\"}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"organisation\":{\"description\":\"d\",\"name\":null}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"organisation\":{\"description\":\"d\",\"description\":\"e\"}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"organisation\":{\"name\":1.5,\"id\":-3}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"organisation\":7}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"organisation\":-7}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"alert\":\" YES \",\"timestamp\":\" 2021-10-06 10:42:58 \"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"alert\":\"1\",\"alert\":{}}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"timestamp\":1633516978}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"timestamp\":\"2021-02-29T10:42:58.000Z\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"timestamp\":\"2024-02-29T23:59:60.999Z\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"timestamp\":\"2024-02-29T24:00:00.000Z\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"timestamp\":\"2024-00-29T23:00:00.000Z\"}]",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"timestamp\":\"0000-01-01T00:00:00.000Z\"}]",
        b"[{\"timestamp\":\"2024-02-29T23:00:00.000Z\",\"description\":\"no id\",\"event_source\":{\"id\":5}}]",
        b"[{\"id\":9,\"timestamp\":\"x\",\"description\":\"no type\",\"organisation\":{\"id\":3}}]",
        b"[{\"id\":9,\"event_type\":{\"id\":4294967296},\"event_severity\":{\"id\":4294967296}}]",
        b"[{\"name\":{\"id\":1},\"id\":1,\"event_type\":{\"id\":2}}]",
        // Ids: signed 64-bit; anything else present is `invalid_id`, kept as its text.
        b"[{\"id\":9223372036854775807,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":9223372036854775808,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":18446744073709551615,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":-1,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":-5,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":0,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":1e19,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":9.2e18,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":\"9223372036854775808\",\"event_type\":{\"id\":2}}]",
        b"[{\"id\":\"-5\",\"event_type\":{\"id\":2}}]",
        b"[{\"id\": -5 ,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":-5,\"id\":5,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":5,\"id\":-5,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":-5,\"id\":null,\"event_type\":{\"id\":2}}]",
        b"[{\"id\":-5},{\"id\":-6},{\"id\":-5,\"description\":\"d\"}]",
        b"[{\"id\":[\"\xff\"],\"event_type\":{\"id\":2}}]",
        b"[{\"id\":{\"a\":\"\xff\"},\"event_type\":{\"id\":2}}]",
        b"[{\"id\":{\"a\":\"\\ud800\"},\"event_type\":{\"id\":2}}]",
        b"[{\"id\":[1e999],\"event_type\":{\"id\":2}}]",
        b"[{\"id\":\"\\u0035\",\"event_type\":{\"id\":2}}]",
        b"[{\"id\":\"\\u002d5\",\"event_type\":{\"id\":2}}]",
        b"[{\"id\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"event_type\":1}]",
        b"{\"id\":-5,\"event_type\":{\"id\":2}}",
        b"{\"id\":18446744073709551616,\"event_type\":{\"id\":2}}",
        // Truncations.
        b"[",
        b"[{",
        b"[{\"",
        b"[{\"id",
        b"[{\"id\"",
        b"[{\"id\":",
        b"[{\"id\":1",
        b"[{\"id\":1}",
        b"[{\"id\":1},",
        b"[{\"id\":\"\\",
        b"[{\"id\":\"\\u00",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"x\":[[[{\"a\":",
        b"[{\"id\":1,\"event_type\":{\"id\":2},\"x\":\"\\ud800\\",
        deep_ignored.as_bytes(),
        deep_element.as_bytes(),
        long_string.as_bytes(),
    ];
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = parity(case) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{} of {} edge cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Every id edge, bare and in a string, as the only id, after another one and in a pushed object:
/// both decoders agree, and read each as the signed 64-bit rule says (valid, `invalid_id` with the
/// text as it appeared, or `missing_id` for `null`).
#[test]
fn id_edges_agree_and_follow_the_signed_64_bit_rule() {
    let mut checked = 0;
    for edge in ID_EDGES.iter().map(|e| e.to_string()).chain(ID_EDGES.iter().map(|e| format!("\"{e}\""))) {
        let quoted = edge.starts_with('"');
        let bare = edge.trim_matches('"');
        // What the rule says: integers (in a string: digits only) in 0..=i64::MAX, whole floats below
        // 2^63 as serde_json reads them (it rounds `9.223372036854775e18` up to 2^63; Rust's
        // `parse` rounds it down).
        let value: Option<f64> = serde_json::from_str(bare).ok();
        let digits = !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit());
        let valid = match value {
            _ if quoted => digits && bare.parse::<u64>().is_ok_and(|v| v <= MAX_EVENT_ID),
            _ if digits => bare.parse::<u64>().is_ok_and(|v| v <= MAX_EVENT_ID),
            Some(v) => v.fract() == 0.0 && (0.0..9_223_372_036_854_775_808.0).contains(&v),
            None => false,
        };
        for body in [
            format!(r#"[{{"id":{edge},"event_type":{{"id":2}}}}]"#),
            format!(r#"[{{"id":3,"event_type":{{"id":2}},"id":{edge}}}]"#),
            format!(r#"{{"event_type":{{"id":2}},"id": {edge} }}"#),
        ] {
            assert_parity(body.as_bytes());
            let list = decode_event_object_or_list(body.as_bytes()).expect("well-formed");
            match &list[0] {
                Ok(event) => assert!(valid && event.id <= MAX_EVENT_ID, "{body}: read as {}", event.id),
                Err(bad) => {
                    assert!(!valid, "{body}: {bad:?}");
                    assert_eq!((bad.id, bad.reason), (None, "invalid_id"), "{body}");
                    assert_eq!(bad.invalid_id.map(|t| t.to_string()), Some(edge.clone()), "{body}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ID_EDGES.len() * 2 * 3);
    let null = decode_event_list(br#"[{"id":null,"event_type":{"id":2}}]"#).expect("well-formed");
    assert_eq!(null[0].as_ref().map_err(|u| (u.reason, u.invalid_id)), Err(("missing_id", None)));
}

/// The scanner's verdicts on their own (not only "same as serde"): a scanner that accepted these
/// would fail here even if the oracle were wrong in the same way.
#[test]
fn scanner_rejects_malformed_pages() {
    // Whether `decode_event_list` and `decode_event_object_or_list` accept each body: one object
    // is a body only for the second (a Data Streamer push), not a page.
    for (body, list_accepts, object_or_list_accepts) in [
        (&b"[{\"id\":1,}]"[..], false, false),
        (b"[{\"id\":1},]", false, false),
        (b"[1 2]", false, false),
        (b"[{\"id\":1}", false, false),
        (b"", false, false),
        // Well-formed, with a value that cannot be decoded: one unreadable record, not a failed body.
        (b"[\"\xff\"]", true, true),
        (b"[{\"id\":1e400}]", true, true),
        (b"[\"\xff]", false, false),
        (b"[{\"id\":1e400]", false, false),
        (b"[{\"x\":\"a\x01\"}]", false, false),
        (b"[01]", false, false),
        (b"{\"id\":1}", false, true),
        (b"{\"id\":1,}", false, false),
        // What serde accepts the scanner must accept too.
        (b"[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]", true, true),
        (b"[{\"x\":\"\xff\\ud800\"}]", true, true),
        (b"[{\"\x01\":1}]", true, true),
    ] {
        let shown = String::from_utf8_lossy(body);
        assert_eq!(decode_event_list(body).is_ok(), list_accepts, "decode_event_list {shown:?}");
        let object_or_list = decode_event_object_or_list(body).is_ok();
        assert_eq!(object_or_list, object_or_list_accepts, "decode_event_object_or_list {shown:?}");
    }
    let e = decode_event_list(b"[{\"id\":1,}]").unwrap_err();
    assert_eq!(e.to_string(), "malformed JSON at line 1 column 10");
    let e = decode_event_list(b"[{\"id\":1,").unwrap_err();
    assert_eq!(e.category(), "truncated JSON");
    // One poison record (a lone surrogate in a name, invalid UTF-8, a number out of range) costs only
    // itself; the same record again has the same fingerprint, another one another.
    let poisoned = b"[{\"id\":1,\"event_type\":{\"id\":2},\"organisation\":{\"id\":3,\"name\":\"\\ud800\"}},\
                     {\"id\":1E400,\"event_type\":{\"id\":2}},{\"id\":4,\"event_type\":{\"id\":2}},\"\xff\"]";
    let decoded = decode_event_list(poisoned).expect("one bad record never fails the page");
    let reasons: Vec<_> = decoded.iter().map(|item| item.as_ref().map(|e| e.id).map_err(|u| u.reason)).collect();
    assert_eq!(reasons, [Err("malformed_value"), Err("malformed_value"), Ok(4), Err("malformed_value")]);
    let prints: Vec<_> = decoded.iter().filter_map(|item| item.as_ref().err()).map(|u| u.fingerprint).collect();
    assert!(prints.iter().all(|&f| f != 0) && prints[0] != prints[1] && prints[1] != prints[2]);
    assert_eq!(decode_event_object_or_list(poisoned).unwrap(), decoded);
    let pushed = decode_event_object_or_list(b"{\"id\":1}").expect("one object is a push body");
    let reasons: Vec<_> = pushed.iter().map(|item| item.as_ref().map(|_| ()).map_err(|u| (u.id, u.reason))).collect();
    assert_eq!(reasons, [Err((Some(1), "missing_event_type"))]);
}
