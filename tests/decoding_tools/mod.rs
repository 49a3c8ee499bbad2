//! Tooling shared by `decoder_parity.rs` and `fuzz_decoder.rs`: proptest configuration, example payloads, body mutations.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{RngAlgorithm, RngSeed};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// `cases` cases from the fixed ChaCha `seed`, so a run is reproducible; `PROPTEST_RNG_SEED=<u64>`
/// explores another seed. Nothing is written to disk (no failure persistence): inputs that ever
/// failed go into the tests by hand.
pub fn proptest_config(seed: u64, cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let rng_seed =
        if std::env::var_os("PROPTEST_RNG_SEED").is_some() { default.rng_seed } else { RngSeed::Fixed(seed) };
    ProptestConfig { cases, failure_persistence: None, rng_algorithm: RngAlgorithm::ChaCha, rng_seed, ..default }
}

// ---------------------------------------------------------------------------------------------
// Example payloads
// ---------------------------------------------------------------------------------------------

/// `tests/fixtures`, where the example payloads are (`examples/`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every file under `dir`, recursively, sorted; nothing if `dir` cannot be read (callers assert
/// how many files they expect).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// An example payload: a `.json` body (not the `manifest.json` index) or a `.raw.txt` one (as
/// published, not well-formed JSON).
pub fn is_example_payload(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    (name.ends_with(".json") && name != "manifest.json") || name.ends_with(".raw.txt")
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

/// Bytes that make interesting insertions and replacements: JSON's structural bytes, bytes that
/// start literals and numbers, control characters and invalid or partial UTF-8.
pub const INTERESTING: &[u8] = &[
    b'"', b'\\', b',', b':', b'[', b']', b'{', b'}', b' ', b'\n', b'0', b'1', b'-', b'.', b'e', b'n', b't', b'u', 0x00,
    0x01, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf5, 0xff,
];

/// JSON fragments spliced into bodies: edge numbers, wrong types, odd strings, deep nesting.
pub static FRAGMENTS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let mut out: Vec<Vec<u8>> = [
        "null",
        "1e999",
        "-1e999",
        "-1",
        "-0",
        "0.0",
        "1.5",
        "1e19",
        "1.8e19",
        "5e-324",
        "-5e-324",
        "1e308",
        "4294967295",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "\"x\"",
        "\"\"",
        "\" 42 \"",
        "\"+7\"",
        "\"TRUE\"",
        "\"yes\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "\"\\\\\"",
        "\"\\u00e9t\\u00e9\"",
        "\"2021-10-27T11:59:29.000Z\"",
        "\"2017-10-26T07:28:00.000+0000\"",
        "\"5/8/2017 10:56:25 PM\"",
        "\"9999-12-31T23:59:60.999999999-99:99\"",
        "[]",
        "{}",
        "[1,[2,[3]]]",
        "{\"id\":7}",
        "{\"id\":-1}",
        "{\"id\":\"12\"}",
        "{\"id\":4294967296}",
        "{\"id\":1,\"name\":null,\"description\":\"d\"}",
        "{\"id\":1,\"id\":null}",
        "true",
        "false",
        "\"id\"",
        "\"event_type\"",
        ",",
        ":",
        "\"",
        "\\",
        "\u{feff}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    out.push(vec![0xff, 0xfe]);
    out.push(b"\"\xc3\x28\"".to_vec()); // a string with invalid UTF-8
    for depth in [64, 127, 128, 129, 200, 5000] {
        out.push([vec![b'['; depth], vec![b']'; depth]].concat());
    }
    out.push([b"{\"a\":".repeat(300), b"1".to_vec(), b"}".repeat(300)].concat());
    out.push(vec![b'['; 3000]);
    out
});

/// The fragments that are whole JSON values (to serde_json's lenient skipping, which is what the
/// decoder does with values it does not read).
pub static VALUE_FRAGMENTS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    FRAGMENTS.iter().filter(|f| serde_json::from_slice::<serde::de::IgnoredAny>(f).is_ok()).cloned().collect()
});

/// Keys the decoder reads, spelled as JSON strings (one with an escape).
pub const KEYS: &[&[u8]] = &[
    b"\"id\"",
    b"\"event_type\"",
    b"\"event_source\"",
    b"\"event_severity\"",
    b"\"organisation\"",
    b"\"timestamp\"",
    b"\"alert\"",
    b"\"description\"",
    b"\"name\"",
    b"\"\\u0069d\"",
    b"\"x\"",
];

/// One change to a body; positions are [`Index`]es, so a mutation applies to a body of any length.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// XOR one byte with a non-zero mask.
    Xor(Index, u8),
    SetByte(Index, u8),
    Insert(Index, Vec<u8>),
    /// Delete up to `n` bytes from a position.
    Delete(Index, usize),
    /// Cut the body at a position (its end included).
    Truncate(Index),
    /// Overwrite up to `len` bytes at a position with a fragment.
    Splice(Index, Index, usize),
    /// Replace a whole JSON value (found after a `:` or `[`) with a fragment.
    ReplaceValue(Index, Index),
    /// Rename an object key (before a `:`) to one the decoder reads: moves fields, makes duplicates.
    RenameKey(Index, Index),
    /// Repeat an object member (`"key": value`) right after itself: a duplicate key.
    RepeatMember(Index),
    /// Copy up to `n` bytes of the body elsewhere (duplicate keys, repeated elements).
    Duplicate(Index, usize, Index),
}

/// Any mutation: byte edits (random bytes and [`INTERESTING`] ones), splices and structural ones.
pub fn mutation() -> BoxedStrategy<Mutation> {
    let interesting = || any::<Index>().prop_map(|b| *b.get(INTERESTING));
    prop_oneof![
        1 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::Xor(at, 1 << bit)),
        1 => (any::<Index>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Xor(at, mask)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, b)| Mutation::SetByte(at, b)),
        2 => (any::<Index>(), interesting()).prop_map(|(at, b)| Mutation::SetByte(at, b)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => (any::<Index>(), interesting()).prop_map(|(at, b)| Mutation::Insert(at, vec![b])),
        1 => any::<Index>().prop_map(|at| Mutation::Delete(at, 1)),
        1 => (any::<Index>(), 1..64usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), any::<Index>(), 0..16usize).prop_map(|(at, f, n)| Mutation::Splice(at, f, n)),
        4 => structural_mutation(),
        1 => (any::<Index>(), 1..256usize, any::<Index>()).prop_map(|(from, n, to)| Mutation::Duplicate(from, n, to)),
    ]
    .boxed()
}

/// Mutations that keep well-formed JSON well-formed (unless a fragment is deeper than serde_json allows).
pub fn structural_mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        4 => (any::<Index>(), any::<Index>()).prop_map(|(at, f)| Mutation::ReplaceValue(at, f)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(at, k)| Mutation::RenameKey(at, k)),
        1 => any::<Index>().prop_map(Mutation::RepeatMember),
    ]
    .boxed()
}

pub fn apply(body: &mut Vec<u8>, mutation: &Mutation) {
    let len = body.len();
    let pos = |at: &Index| if len == 0 { 0 } else { at.index(len) };
    match mutation {
        Mutation::Xor(at, mask) if len > 0 => body[pos(at)] ^= mask,
        Mutation::SetByte(at, byte) if len > 0 => body[pos(at)] = *byte,
        Mutation::Insert(at, bytes) => {
            let at = at.index(len + 1);
            body.splice(at..at, bytes.iter().copied());
        }
        Mutation::Delete(at, n) if len > 0 => {
            let at = pos(at);
            body.drain(at..(at + n).min(len));
        }
        Mutation::Truncate(at) => body.truncate(at.index(len + 1)),
        Mutation::Splice(at, fragment, n) => {
            let at = at.index(len + 1);
            body.splice(at..(at + n).min(len), fragment.get(&FRAGMENTS).iter().copied());
        }
        Mutation::ReplaceValue(at, fragment) => {
            let marks: Vec<usize> = (0..len).filter(|&i| matches!(body[i], b':' | b'[')).collect();
            if !marks.is_empty() {
                let (start, end) = value_after(body, *at.get(&marks));
                body.splice(start..end, fragment.get(&VALUE_FRAGMENTS).iter().copied());
            }
        }
        Mutation::RenameKey(at, key) => {
            let marks = colons(body);
            if let Some((start, end)) = (!marks.is_empty()).then(|| key_before(body, *at.get(&marks))).flatten() {
                body.splice(start..end, key.get(KEYS).iter().copied());
            }
        }
        Mutation::RepeatMember(at) => {
            let marks = colons(body);
            if marks.is_empty() {
                return;
            }
            let colon = *at.get(&marks);
            if let Some((start, _)) = key_before(body, colon) {
                let (_, end) = value_after(body, colon);
                let member = [b",".as_slice(), &body[start..end]].concat();
                body.splice(end..end, member);
            }
        }
        Mutation::Duplicate(from, n, to) if len > 0 => {
            let from = pos(from);
            let span = body[from..(from + n).min(len)].to_vec();
            let to = to.index(len + 1);
            body.splice(to..to, span);
        }
        _ => {}
    }
}

/// The positions of the `:` between object keys and values (approximately: `:` inside strings count too).
fn colons(body: &[u8]) -> Vec<usize> {
    (0..body.len()).filter(|&i| body[i] == b':').collect()
}

/// The span of the key string before the `:` at `colon`, if there is one.
fn key_before(body: &[u8], colon: usize) -> Option<(usize, usize)> {
    let end = colon - body[..colon].iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
    if end == 0 || body[end - 1] != b'"' {
        return None;
    }
    let start = (0..end - 1).rev().find(|&i| body[i] == b'"' && (i == 0 || body[i - 1] != b'\\'))?;
    Some((start, end))
}

/// The start and end of the value after the `:` at `colon`.
fn value_after(body: &[u8], colon: usize) -> (usize, usize) {
    let mut start = colon + 1;
    while body.get(start).is_some_and(|b| b.is_ascii_whitespace()) {
        start += 1;
    }
    (start, value_end(body, start))
}

/// The end of the JSON value starting at `start` (roughly: strings and brackets are matched).
fn value_end(body: &[u8], start: usize) -> usize {
    let skip_string = |mut i: usize| {
        i += 1;
        while i < body.len() {
            match body[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        body.len()
    };
    match body.get(start) {
        None => start,
        Some(b'"') => skip_string(start),
        Some(b'[' | b'{') => {
            let (mut depth, mut i) = (0usize, start);
            while i < body.len() {
                match body[i] {
                    b'"' => {
                        i = skip_string(i);
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            body.len()
        }
        Some(_) => {
            let len = body[start..].iter().position(|b| b",]} \t\r\n".contains(b)).unwrap_or(body.len() - start);
            start + len.max(1)
        }
    }
}
