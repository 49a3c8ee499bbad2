//! A hand-written scanner for emnify event lists: the same results as the serde decoder in
//! [`super::model`], in one pass over the bytes.
//!
//! [`decode_event_list`] and [`decode_event_object_or_list`] return exactly what
//! [`super::model::serde_decode_event_list`] and [`super::model::serde_decode_event_object_or_list`] return
//! (`tests/decoder_parity.rs` checks that differentially): the same events, the same
//! `Unreadable` records with the same fingerprints, and an error for exactly the bodies
//! `serde_json` rejects. Both decoders only read an event's raw values into a
//! `fields::EventFields`, which one shared macro turns into the `Event` or `Unreadable`; what
//! follows is about reading those values the same way, following how `serde_json` 1.0.154 reads
//! each position of the document:
//!
//! * Values the decoder reads (`id`, `timestamp`, `alert`, `description`, the `event_*` and
//!   `organisation` sub-objects and their `id`/`name`/`description`, list elements) are parsed like
//!   `deserialize_any`: strings must be valid UTF-8 with paired `\u` surrogates, numbers are
//!   classified as u64 / i64 / f64 and can fail as out of range (`1e400`). Such a failure costs
//!   only its element: the element is skipped again as an ignored value, and is one `malformed_value`
//!   record unless that fails too (then the body is not JSON).
//! * Values it ignores are only checked for grammar like `IgnoredAny` (`ignore_value`): strings may
//!   hold invalid UTF-8 and lone surrogate escapes, numbers are never out of range, and nesting is
//!   unbounded (serde_json's ignore loop keeps its own stack and does not count the recursion limit).
//! * The event's own `id` is read as a raw value in model.rs (to keep an invalid id's text for the
//!   log line) and then as a value: like other read values, except that its whole text must be
//!   UTF-8, the parts inside it that are otherwise ignored included.
//! * Keys of event objects and their sub-objects are read as raw bytes (`deserialize_bytes`): no
//!   UTF-8 check and control characters allowed; keys of objects drained inside a read value
//!   (`"id": {"k": 1}`) are parsed as strings; keys inside ignored values are checked like ignored
//!   strings.
//!
//! Number values other than plain non-negative integers that fit in a u64 (negatives, fractions,
//! exponents, overflowing integers) are rare; they are handed to `serde_json` itself, so their f64
//! value (which depends on serde_json's float algorithm and features) is exactly the one the serde
//! decoder sees.
//!
//! The recursion limit can never be reached: the deepest position the decoder *parses* is 4 levels
//! down (list, event, sub-object, an object given as its `id`), everything deeper is ignored, and
//! ignored values have no depth limit in serde_json. The scanner skips nested values without
//! recursion (a bit stack), so deep junk cannot overflow its stack either.

use std::borrow::Cow;
use std::fmt;

use super::fields::{
    decoded_event, id_from_f64, id_from_i64, id_from_str, id_from_u64, malformed_value, not_an_object, parse_iccid,
    EventFields, IdField,
};
use super::model::{DecodedEvent, Key};
use crate::timefmt::parse_timestamp_millis;

/// Why a body could not be scanned, with the position; never echoes the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    category: Category,
    line: usize,
    column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Malformed,
    Truncated,
    Shape,
}

impl DecodeError {
    /// The short category: "malformed JSON", "truncated JSON" or "unexpected JSON shape".
    pub fn category(&self) -> &'static str {
        match self.category {
            Category::Malformed => "malformed JSON",
            Category::Truncated => "truncated JSON",
            Category::Shape => "unexpected JSON shape",
        }
    }

    /// 1-based line of the offending byte.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column (in bytes) of the offending byte; one past the last byte for truncated bodies.
    pub fn column(&self) -> usize {
        self.column
    }

    /// True if the body ended too early (a page cut short), as opposed to bad bytes or a wrong shape.
    pub fn is_truncated(&self) -> bool {
        self.category == Category::Truncated
    }

    #[cold]
    fn new(body: &[u8], fail: Fail) -> DecodeError {
        let at = fail.at.min(body.len());
        let category = if fail.shape {
            Category::Shape
        } else if at >= body.len() {
            Category::Truncated
        } else {
            Category::Malformed
        };
        let before = &body[..at];
        let line_start = before.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
        let line = 1 + before[..line_start].iter().filter(|&&c| c == b'\n').count();
        DecodeError { category, line, column: at - line_start + 1 }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {} column {}", self.category(), self.line, self.column)
    }
}

impl std::error::Error for DecodeError {}

/// Scans a `GET /api/v1/event` body: a bare JSON array of events (as [`super::model::serde_decode_event_list`]).
pub fn decode_event_list(body: &[u8]) -> Result<Vec<DecodedEvent<'_>>, DecodeError> {
    let mut s = Scanner { b: body, i: 0, day: None };
    let result = (|| {
        s.ws();
        if s.peek() != b'[' {
            return Err(s.not_expected_shape());
        }
        s.i += 1;
        let items = s.items()?;
        s.end()?;
        Ok(items)
    })();
    result.map_err(|fail| DecodeError::new(body, fail))
}

/// Scans one event object or an array of them (as [`super::model::serde_decode_event_object_or_list`]).
pub fn decode_event_object_or_list(body: &[u8]) -> Result<Vec<DecodedEvent<'_>>, DecodeError> {
    let mut s = Scanner { b: body, i: 0, day: None };
    let result = (|| {
        s.ws();
        let items = match s.peek() {
            b'[' => {
                s.i += 1;
                s.items()?
            }
            b'{' => vec![s.element()?],
            _ => return Err(s.not_expected_shape()),
        };
        s.end()?;
        Ok(items)
    })();
    result.map_err(|fail| DecodeError::new(body, fail))
}

/// Where scanning stopped; the category is derived from the position (at the end: truncated).
#[derive(Debug, Clone, Copy)]
struct Fail {
    at: usize,
    shape: bool,
}

type Scan<T> = Result<T, Fail>;

/// A value read like serde's `deserialize_any`; arrays are already skipped, objects are open (the
/// cursor is just after `{`) for the caller to read or drain.
enum Any<'a> {
    Unit,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Seq,
    Map,
}

const ONES: u64 = u64::MAX / 255;
const HIGH: u64 = ONES << 7;

/// A mask with the high bit set in the bytes of `x` that are `"`, `\` or below 0x20; exact for the
/// lowest such byte (borrows only propagate upwards from a match), which is all that is used.
#[inline(always)]
fn specials(x: u64) -> u64 {
    let ctrl = x.wrapping_sub(ONES * 0x20) & !x;
    let q = x ^ (ONES * u64::from(b'"'));
    let q = q.wrapping_sub(ONES) & !q;
    let s = x ^ (ONES * u64::from(b'\\'));
    let s = s.wrapping_sub(ONES) & !s;
    (ctrl | q | s) & HIGH
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// The last `YYYY-MM-DD` seen in a canonical timestamp and its Unix millis at midnight.
    day: Option<([u8; 10], Option<i64>)>,
}

impl<'a> Scanner<'a> {
    /// The byte at the cursor, 0 at the end (a NUL byte is never valid where this is used; errors
    /// tell the two apart by position).
    #[inline(always)]
    fn peek(&self) -> u8 {
        match self.b.get(self.i) {
            Some(&c) => c,
            None => 0,
        }
    }

    #[cold]
    #[inline(never)]
    fn fail(&self) -> Fail {
        Fail { at: self.i, shape: false }
    }

    #[cold]
    #[inline(never)]
    fn eof(&self) -> Fail {
        Fail { at: self.b.len(), shape: false }
    }

    /// The top-level value is not what was asked for: a shape error if it starts like a JSON
    /// value, else a syntax error (serde reports the same, modulo category).
    #[cold]
    fn not_expected_shape(&self) -> Fail {
        let shape = matches!(self.peek(), b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n');
        Fail { at: self.i, shape }
    }

    /// Skips whitespace; compact JSON has none, so the common case is one comparison.
    #[inline(always)]
    fn ws(&mut self) {
        if let Some(&c) = self.b.get(self.i) {
            if c <= b' ' {
                self.ws_slow();
            }
        }
    }

    #[inline(never)]
    fn ws_slow(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline(always)]
    fn expect(&mut self, c: u8) -> Scan<()> {
        if self.peek() == c {
            self.i += 1;
            Ok(())
        } else {
            Err(self.fail())
        }
    }

    fn end(&mut self) -> Scan<()> {
        self.ws();
        if self.i < self.b.len() {
            return Err(self.fail());
        }
        Ok(())
    }

    /// `"key":` of an event object or sub-object, the cursor on the opening quote.
    #[inline(always)]
    fn member_key(&mut self) -> Scan<Key> {
        self.expect(b'"')?;
        let key = self.key()?;
        self.ws();
        self.expect(b':')?;
        self.ws();
        Ok(key)
    }

    /// After a member of an object or list: true if a `,` says another follows, false if `close`
    /// ended the container.
    #[inline(always)]
    fn more_members(&mut self, close: u8) -> Scan<bool> {
        self.ws();
        match self.peek() {
            b',' => {
                self.i += 1;
                self.ws();
                Ok(true)
            }
            c if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(self.fail()),
        }
    }

    /// The elements of a list, the cursor just after `[`.
    fn items(&mut self) -> Scan<Vec<DecodedEvent<'a>>> {
        // About 670 bytes per realistic event: one allocation for a typical page, growth for dense ones.
        let mut out = Vec::with_capacity((self.b.len() / 512).min(1 << 16) + 1);
        self.ws();
        if self.peek() == b']' {
            self.i += 1;
            return Ok(out);
        }
        loop {
            let item = self.element()?;
            out.push(item);
            if !self.more_members(b']')? {
                return Ok(out);
            }
        }
    }

    /// One list element (or a pushed body's one object), the cursor on its first byte. An element
    /// whose grammar is sound but one of whose read values cannot be decoded (a lone surrogate, invalid
    /// UTF-8, a number out of range) is one unreadable record, not a failed body: it is skipped again
    /// as an ignored value would be, and the body fails only if that fails too (as in model.rs).
    #[inline(always)]
    fn element(&mut self) -> Scan<DecodedEvent<'a>> {
        let start = self.i;
        match self.element_strict() {
            Ok(item) => Ok(item),
            Err(_) => self.element_malformed(start),
        }
    }

    #[cold]
    #[inline(never)]
    fn element_malformed(&mut self, start: usize) -> Scan<DecodedEvent<'a>> {
        self.i = start;
        self.skip_value()?;
        Ok(Err(malformed_value(&self.b[start..self.i])))
    }

    #[inline(always)]
    fn element_strict(&mut self) -> Scan<DecodedEvent<'a>> {
        if self.peek() == b'{' {
            self.i += 1;
            self.event()
        } else {
            if let Any::Map = self.any()? {
                // Not reached (objects are read as events above); drained all the same.
                self.drain_map()?;
            }
            Ok(Err(not_an_object()))
        }
    }

    /// One event object, the cursor just after `{` (as `model::read_event`).
    fn event(&mut self) -> Scan<DecodedEvent<'a>> {
        let mut fields = EventFields::default();
        self.ws();
        if self.peek() == b'}' {
            self.i += 1;
        } else {
            loop {
                let key = self.member_key()?;
                match key {
                    Key::Id => fields.id = self.event_id()?,
                    Key::Timestamp => fields.timestamp = self.any_str()?,
                    Key::Alert => fields.alert = self.any_bool()?,
                    Key::Description => fields.description = self.any_str()?,
                    // A sub-object given as a non-object (or without an id) reads as no id in
                    // model.rs too: `Ref(None)` and `Ref(Some(RefValue { id: None, .. }))` lead to
                    // the same results.
                    Key::EventType => fields.event_type_id = self.reference::<false>()?.0,
                    Key::EventSource => fields.source_id = self.reference::<false>()?.0,
                    Key::EventSeverity => fields.severity_id = self.reference::<false>()?.0,
                    Key::Organisation => {
                        (fields.organisation_id, fields.organisation_name) = self.reference::<true>()?;
                    }
                    Key::Endpoint => fields.endpoint_id = self.reference::<false>()?.0,
                    Key::Sim => fields.iccid = self.sim_iccid()?,
                    Key::Name | Key::Iccid | Key::Other => self.skip_value()?,
                }
                if !self.more_members(b'}')? {
                    break;
                }
            }
        }
        let timestamp_millis = fields.timestamp.as_deref().and_then(|t| self.timestamp_millis(t));
        decoded_event!(fields, timestamp_millis)
    }

    /// `parse_timestamp_millis`, with a fast path for the canonical `YYYY-MM-DDTHH:MM:SS.mmmZ`:
    /// the calendar part comes from `parse_timestamp_millis` itself (once per distinct day), the
    /// time of day is added with the same range checks (hour <= 23, minute <= 59, second <= 60).
    #[inline]
    fn timestamp_millis(&mut self, text: &str) -> Option<i64> {
        let b = text.as_bytes();
        let canonical = b.len() == 24
            && b.iter().enumerate().all(|(i, &c)| match i {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 | 16 => c == b':',
                19 => c == b'.',
                23 => c == b'Z',
                _ => c.is_ascii_digit(),
            });
        if !canonical {
            return parse_timestamp_millis(text);
        }
        let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
        let (hour, minute, second) = (two(11), two(14), two(17));
        let millis = two(19 + 1) * 10 + u32::from(b[22] - b'0');
        let date: [u8; 10] = b[..10].try_into().expect("10 bytes");
        let midnight = match self.day {
            Some((day, midnight)) if day == date => midnight,
            _ => {
                let mut text = *b"0000-00-00T00:00:00.000Z";
                text[..10].copy_from_slice(&date);
                let midnight = std::str::from_utf8(&text).ok().and_then(parse_timestamp_millis);
                self.day = Some((date, midnight));
                midnight
            }
        };
        let result = if hour > 23 || minute > 59 || second > 60 {
            None
        } else {
            midnight.map(|m| m + i64::from((hour * 3600 + minute * 60 + second) * 1000 + millis))
        };
        debug_assert_eq!(result, parse_timestamp_millis(text), "{text}");
        result
    }

    /// A sub-object read for its id (and its name when `NAMED`), as `model::Ref`.
    #[inline(always)]
    fn reference<const NAMED: bool>(&mut self) -> Scan<(Option<u64>, Option<Cow<'a, str>>)> {
        if self.peek() != b'{' {
            return Ok(match self.any()? {
                Any::U64(v) => (Some(v), None),
                Any::I64(v) => (u64::try_from(v).ok(), None),
                _ => (None, None),
            });
        }
        self.i += 1;
        let mut id = None;
        let mut name: Option<Cow<'a, str>> = None;
        self.ws();
        if self.peek() == b'}' {
            self.i += 1;
            return Ok((id, name));
        }
        loop {
            let key = self.member_key()?;
            match key {
                Key::Id => id = self.any_u64()?,
                // `name` wins over `description`; a `null` name keeps an earlier description.
                Key::Name if NAMED => name = self.any_str()?.or(name.take()),
                Key::Description if NAMED => {
                    let d = self.any_str()?;
                    if name.is_none() {
                        name = d;
                    }
                }
                _ => self.skip_value()?,
            }
            if !self.more_members(b'}')? {
                return Ok((id, name));
            }
        }
    }

    /// The `sim` sub-object read for its `iccid`, as `model::SimRef`.
    fn sim_iccid(&mut self) -> Scan<Option<u64>> {
        if self.peek() != b'{' {
            self.any()?;
            return Ok(None);
        }
        self.i += 1;
        let mut iccid = None;
        self.ws();
        if self.peek() == b'}' {
            self.i += 1;
            return Ok(None);
        }
        loop {
            match self.member_key()? {
                Key::Iccid => {
                    let start = self.i;
                    self.skip_value()?;
                    // As serde_json's `RawValue` in model.rs: the skipped text must be UTF-8.
                    let raw = std::str::from_utf8(&self.b[start..self.i])
                        .map_err(|e| Fail { at: start + e.valid_up_to(), shape: false })?;
                    iccid = parse_iccid(raw);
                }
                _ => self.skip_value()?,
            }
            if !self.more_members(b'}')? {
                return Ok(iccid);
            }
        }
    }

    /// The event's `id`, as `model::EventId` (the rule is `fields::IdField`'s).
    #[inline(always)]
    fn event_id(&mut self) -> Scan<IdField<'a>> {
        let start = self.i;
        let id = match self.any()? {
            Any::U64(v) => id_from_u64(v),
            Any::Unit => return Ok(IdField::Missing),
            Any::I64(v) => id_from_i64(v),
            Any::F64(v) => id_from_f64(v),
            Any::Str(s) => id_from_str(&s),
            Any::Map => {
                self.drain_map()?;
                None
            }
            Any::Bool(_) | Any::Seq => None,
        };
        match id {
            Some(id) => Ok(IdField::Valid(id)),
            None => self.invalid_id(start),
        }
    }

    /// An id that is present but not valid, kept as its text. model.rs reads the id as a raw value,
    /// which must be UTF-8 as a whole: the parts `any` skipped unchecked (inside an array or an
    /// object's values) are checked here, and failing makes the element `malformed_value` as there.
    #[cold]
    #[inline(never)]
    fn invalid_id(&self, start: usize) -> Scan<IdField<'a>> {
        let b: &'a [u8] = self.b;
        match std::str::from_utf8(&b[start..self.i]) {
            Ok(text) => Ok(IdField::Invalid(text)),
            Err(e) => Err(Fail { at: start + e.valid_up_to(), shape: false }),
        }
    }

    /// As `model::AnyU64` (the ids of sub-objects).
    #[inline(always)]
    fn any_u64(&mut self) -> Scan<Option<u64>> {
        Ok(match self.any()? {
            Any::U64(v) => Some(v),
            Any::I64(v) => u64::try_from(v).ok(),
            Any::F64(v) => {
                // 2^64 exactly: every whole float below it fits in a u64.
                let whole = v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v);
                whole.then_some(v as u64)
            }
            Any::Str(s) => s.trim().parse().ok(),
            Any::Map => {
                self.drain_map()?;
                None
            }
            Any::Unit | Any::Bool(_) | Any::Seq => None,
        })
    }

    /// As `model::AnyBool`.
    #[inline]
    fn any_bool(&mut self) -> Scan<bool> {
        Ok(match self.any()? {
            Any::Bool(v) => v,
            Any::U64(v) => v != 0,
            Any::I64(v) => v != 0,
            Any::F64(v) => v != 0.0,
            Any::Str(s) => {
                // Same as model.rs's `to_ascii_lowercase()` match, without the allocation.
                let t = s.trim();
                t.eq_ignore_ascii_case("true") || t == "1" || t.eq_ignore_ascii_case("yes")
            }
            Any::Map => {
                self.drain_map()?;
                false
            }
            Any::Unit | Any::Seq => false,
        })
    }

    /// As `model::AnyStr`.
    #[inline(always)]
    fn any_str(&mut self) -> Scan<Option<Cow<'a, str>>> {
        Ok(match self.any()? {
            Any::Str(s) => Some(s),
            Any::U64(v) => Some(Cow::Owned(v.to_string())),
            Any::I64(v) => Some(Cow::Owned(v.to_string())),
            Any::F64(v) => Some(Cow::Owned(v.to_string())),
            Any::Map => {
                self.drain_map()?;
                None
            }
            Any::Unit | Any::Bool(_) | Any::Seq => None,
        })
    }

    /// One value as `deserialize_any` reads it; the cursor is on its first byte.
    #[inline(always)]
    fn any(&mut self) -> Scan<Any<'a>> {
        match self.peek() {
            b'"' => {
                self.i += 1;
                Ok(Any::Str(self.string()?))
            }
            b'0'..=b'9' => self.number(),
            b'-' => self.number_slow(self.i),
            b'{' => {
                self.i += 1;
                Ok(Any::Map)
            }
            b'[' => {
                // `drain_seq`: every element is ignored.
                self.skip_value()?;
                Ok(Any::Seq)
            }
            b't' => self.literal(b"true").map(|_| Any::Bool(true)),
            b'f' => self.literal(b"false").map(|_| Any::Bool(false)),
            b'n' => self.literal(b"null").map(|_| Any::Unit),
            _ => Err(self.fail()),
        }
    }

    /// `drain_map` of an object given where a scalar was expected: keys are parsed as strings
    /// (serde_json's map keys forward `ignored_any` to `deserialize_any`), values ignored.
    #[cold]
    fn drain_map(&mut self) -> Scan<()> {
        self.ws();
        if self.peek() == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.expect(b'"')?;
            self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            self.skip_value()?;
            if !self.more_members(b'}')? {
                return Ok(());
            }
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &'static [u8]) -> Scan<()> {
        let end = self.i + word.len();
        if self.b.get(self.i..end) == Some(word) {
            self.i = end;
            return Ok(());
        }
        self.literal_fail(word)
    }

    #[cold]
    #[inline(never)]
    fn literal_fail(&mut self, word: &'static [u8]) -> Scan<()> {
        let rest = &self.b[self.i..];
        let same = rest.iter().zip(word).take_while(|(a, b)| a == b).count();
        self.i += same;
        Err(self.fail())
    }

    /// A non-negative integer that fits in a u64; anything else goes to [`Self::number_slow`].
    #[inline(always)]
    fn number(&mut self) -> Scan<Any<'a>> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let mut v = u64::from(b[i] - b'0');
        i += 1;
        if v == 0 {
            if let Some(b'0'..=b'9') = b.get(i) {
                self.i = i;
                return Err(self.fail());
            }
        } else {
            while let Some(&c) = b.get(i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d))) {
                    Some(n) => v = n,
                    None => return self.number_slow(start),
                }
                i += 1;
            }
        }
        if let Some(b'.' | b'e' | b'E') = b.get(i) {
            return self.number_slow(start);
        }
        self.i = i;
        Ok(Any::U64(v))
    }

    /// Negative, fractional, exponent or overflowing numbers: the grammar is checked here, the
    /// value comes from serde_json itself so that it is bit-for-bit what the serde decoder gets
    /// (its float parsing is not correctly rounded unless `float_roundtrip` is on, and it errors on
    /// values out of the f64 range).
    #[cold]
    #[inline(never)]
    fn number_slow(&mut self, start: usize) -> Scan<Any<'a>> {
        self.i = start;
        self.skip_number()?;
        match serde_json::from_slice::<SerdeNumber>(&self.b[start..self.i]) {
            Ok(SerdeNumber(n)) => Ok(n),
            Err(_) => Err(Fail { at: start, shape: false }),
        }
    }

    /// Checks a number's grammar (`ignore_integer` and friends) and moves past it.
    fn skip_number(&mut self) -> Scan<()> {
        if self.peek() == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.b.get(self.i) {
                    return Err(self.fail());
                }
            }
            Some(b'1'..=b'9') => {
                self.i += 1;
                self.digits();
            }
            Some(_) => return Err(self.fail()),
            None => return Err(self.eof()),
        }
        if self.peek() == b'.' {
            self.i += 1;
            self.one_or_more_digits()?;
        }
        if let b'e' | b'E' = self.peek() {
            self.i += 1;
            if let b'+' | b'-' = self.peek() {
                self.i += 1;
            }
            self.one_or_more_digits()?;
        }
        Ok(())
    }

    #[inline(always)]
    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn one_or_more_digits(&mut self) -> Scan<()> {
        match self.b.get(self.i) {
            Some(b'0'..=b'9') => {
                self.i += 1;
                self.digits();
                Ok(())
            }
            Some(_) => Err(self.fail()),
            None => Err(self.eof()),
        }
    }

    /// Moves to the first `"`, `\` or control byte at or after the cursor (or the end). With
    /// `TRACK`, returns the OR of the bytes passed, whose high bits tell whether any was non-ASCII.
    #[inline(always)]
    fn skip_to_special<const TRACK: bool>(&mut self) -> u64 {
        let b = self.b;
        let mut i = self.i;
        let mut acc = 0u64;
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
            };
            while i + 16 <= b.len() {
                // SAFETY: `i + 16 <= b.len()`, so the unaligned 16-byte load reads inside `b`; the
                // intrinsics are SSE2, which every x86_64 CPU has (it is in the target's baseline).
                let (special, high) = unsafe {
                    let x = _mm_loadu_si128(b.as_ptr().add(i).cast::<__m128i>());
                    let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
                    let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
                    let ctrl_max = _mm_set1_epi8(0x1f);
                    let ctrl = _mm_cmpeq_epi8(_mm_max_epu8(x, ctrl_max), ctrl_max);
                    let special = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), ctrl)) as u32;
                    (special, _mm_movemask_epi8(x) as u32)
                };
                if special != 0 {
                    let n = special.trailing_zeros();
                    if TRACK && high & ((1u32 << n) - 1) != 0 {
                        acc |= HIGH;
                    }
                    self.i = i + n as usize;
                    return acc;
                }
                if TRACK && high != 0 {
                    acc |= HIGH;
                }
                i += 16;
            }
        }
        while let Some(chunk) = b.get(i..i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let m = specials(x);
            if m != 0 {
                let n = (m.trailing_zeros() / 8) as usize;
                if TRACK {
                    acc |= x & ((1u64 << (n * 8)) - 1);
                }
                self.i = i + n;
                return acc;
            }
            if TRACK {
                acc |= x;
            }
            i += 8;
        }
        while let Some(&c) = b.get(i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                break;
            }
            if TRACK {
                acc |= u64::from(c);
            }
            i += 1;
        }
        self.i = i;
        acc
    }

    /// A string parsed as `&str` (`parse_str`), the cursor just after the opening quote: control
    /// characters rejected, UTF-8 validated, `\u` surrogates must pair. Borrowed unless escaped.
    #[inline(always)]
    fn string(&mut self) -> Scan<Cow<'a, str>> {
        let start = self.i;
        let acc = self.skip_to_special::<true>();
        match self.b.get(self.i) {
            Some(b'"') => {
                let s = &self.b[start..self.i];
                self.i += 1;
                if acc & HIGH == 0 {
                    // SAFETY: no byte of `s` has its high bit set (the OR of all of them has none),
                    // so `s` is ASCII and therefore valid UTF-8.
                    Ok(Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(s) }))
                } else {
                    match std::str::from_utf8(s) {
                        Ok(s) => Ok(Cow::Borrowed(s)),
                        Err(e) => Err(Fail { at: start + e.valid_up_to(), shape: false }),
                    }
                }
            }
            Some(b'\\') => self.string_escaped(start),
            Some(_) => Err(self.fail()),
            None => Err(self.eof()),
        }
    }

    /// The rest of a parsed string that has escapes; the cursor is on the first backslash.
    #[cold]
    #[inline(never)]
    fn string_escaped(&mut self, start: usize) -> Scan<Cow<'a, str>> {
        let mut buf = Vec::with_capacity(self.i - start + 16);
        buf.extend_from_slice(&self.b[start..self.i]);
        loop {
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    self.i += 1;
                    self.unescape(&mut buf)?;
                }
                Some(_) => return Err(self.fail()),
                None => return Err(self.eof()),
            }
            let from = self.i;
            self.skip_to_special::<false>();
            buf.extend_from_slice(&self.b[from..self.i]);
        }
        // Escapes only ever add whole, valid code points, so this checks the raw parts.
        String::from_utf8(buf).map(Cow::Owned).map_err(|_| Fail { at: start, shape: false })
    }

    /// One escape of a parsed string (`parse_escape` with `validate`), after the backslash.
    fn unescape(&mut self, buf: &mut Vec<u8>) -> Scan<()> {
        let Some(&c) = self.b.get(self.i) else { return Err(self.eof()) };
        self.i += 1;
        let byte = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let n = self.hex4()?;
                let code = match n {
                    0xDC00..=0xDFFF => return Err(self.fail()),
                    0xD800..=0xDBFF => {
                        // A leading surrogate must be followed by `\u` and a trailing one.
                        for want in [b'\\', b'u'] {
                            match self.b.get(self.i) {
                                Some(&c) if c == want => self.i += 1,
                                Some(_) => return Err(self.fail()),
                                None => return Err(self.eof()),
                            }
                        }
                        let n2 = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&n2) {
                            return Err(self.fail());
                        }
                        ((u32::from(n - 0xD800) << 10) | u32::from(n2 - 0xDC00)) + 0x1_0000
                    }
                    _ => u32::from(n),
                };
                let Some(ch) = char::from_u32(code) else { return Err(self.fail()) };
                buf.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => {
                self.i -= 1;
                return Err(self.fail());
            }
        };
        buf.push(byte);
        Ok(())
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Scan<u16> {
        let Some(digits) = self.b.get(self.i..self.i + 4) else { return Err(self.eof()) };
        let mut n = 0u16;
        for &c in digits {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(self.fail()),
            };
            n = (n << 4) | u16::from(d);
        }
        self.i += 4;
        Ok(n)
    }

    /// One escape of an ignored or raw string (`ignore_escape`), after the backslash: any four hex
    /// digits after `\u`, so lone surrogates pass.
    fn skip_escape(&mut self) -> Scan<()> {
        match self.b.get(self.i) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.i += 1;
                Ok(())
            }
            Some(b'u') => {
                self.i += 1;
                self.hex4().map(|_| ())
            }
            Some(_) => Err(self.fail()),
            None => Err(self.eof()),
        }
    }

    /// An object key read as raw bytes (`deserialize_bytes` / `parse_str_raw`), the cursor just
    /// after the opening quote: control characters and invalid UTF-8 are accepted, escapes are
    /// checked and decoded for the comparison.
    #[inline(always)]
    fn key(&mut self) -> Scan<Key> {
        let start = self.i;
        loop {
            self.skip_to_special::<false>();
            match self.b.get(self.i) {
                Some(b'"') => {
                    let key = Key::from_bytes(&self.b[start..self.i]);
                    self.i += 1;
                    return Ok(key);
                }
                Some(b'\\') => return self.key_escaped(start),
                // Control characters are allowed in raw keys.
                Some(_) => self.i += 1,
                None => return Err(self.eof()),
            }
        }
    }

    /// A raw key with escapes, the cursor on the first backslash. The keys that matter are ASCII
    /// and at most 14 bytes, so a 16-byte buffer decides the match; any non-ASCII `\u` (lone
    /// surrogates included, which `parse_str_raw` keeps as WTF-8) cannot match.
    #[cold]
    #[inline(never)]
    fn key_escaped(&mut self, start: usize) -> Scan<Key> {
        let mut buf = [0u8; 16];
        let mut len = 0usize;
        let mut matchable = true;
        let mut push = |c: u8, len: &mut usize| {
            if *len < buf.len() {
                buf[*len] = c;
            }
            *len += 1;
        };
        for &c in &self.b[start..self.i] {
            push(c, &mut len);
        }
        loop {
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(&c) = self.b.get(self.i) else { return Err(self.eof()) };
                    self.i += 1;
                    match c {
                        b'u' => {
                            let n = self.hex4()?;
                            if n < 0x80 {
                                push(n as u8, &mut len);
                            } else {
                                matchable = false;
                            }
                        }
                        b'"' | b'\\' | b'/' => push(c, &mut len),
                        b'b' => push(0x08, &mut len),
                        b'f' => push(0x0c, &mut len),
                        b'n' => push(b'\n', &mut len),
                        b'r' => push(b'\r', &mut len),
                        b't' => push(b'\t', &mut len),
                        _ => {
                            self.i -= 1;
                            return Err(self.fail());
                        }
                    }
                }
                Some(&c) => {
                    self.i += 1;
                    push(c, &mut len);
                }
                None => return Err(self.eof()),
            }
        }
        Ok(if matchable && len <= buf.len() { Key::from_bytes(&buf[..len]) } else { Key::Other })
    }

    /// An ignored string (`ignore_str`), the cursor just after the opening quote: control
    /// characters rejected, escapes checked, bytes otherwise unchecked.
    #[inline(always)]
    fn skip_string(&mut self) -> Scan<()> {
        loop {
            self.skip_to_special::<false>();
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    self.skip_escape()?;
                }
                Some(_) => return Err(self.fail()),
                None => return Err(self.eof()),
            }
        }
    }

    /// Skips one value as `IgnoredAny` (`ignore_value`): grammar checked, nothing kept. The cursor is
    /// on the value's first byte (whitespace already skipped).
    #[inline(always)]
    fn skip_value(&mut self) -> Scan<()> {
        match self.peek() {
            b'"' => {
                self.i += 1;
                self.skip_string()
            }
            b'0'..=b'9' | b'-' => self.skip_number(),
            b'{' | b'[' => self.skip_nested(),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => Err(self.fail()),
        }
    }

    /// Skips an ignored array or object, nesting unbounded and without recursion.
    #[inline(never)]
    fn skip_nested(&mut self) -> Scan<()> {
        let mut stack = BitStack::default();
        'value: loop {
            match self.peek() {
                b'"' => {
                    self.i += 1;
                    self.skip_string()?;
                }
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == b'}' {
                        self.i += 1;
                    } else {
                        stack.push(true);
                        self.skip_key_colon()?;
                        continue 'value;
                    }
                }
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == b']' {
                        self.i += 1;
                    } else {
                        stack.push(false);
                        continue 'value;
                    }
                }
                b'0'..=b'9' | b'-' => self.skip_number()?,
                b'n' => self.literal(b"null")?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                _ => return Err(self.fail()),
            }
            // A value is complete: close containers until one continues.
            loop {
                let Some(in_object) = stack.top() else { return Ok(()) };
                self.ws();
                match self.peek() {
                    b',' => {
                        self.i += 1;
                        self.ws();
                        if in_object {
                            self.skip_key_colon()?;
                        }
                        continue 'value;
                    }
                    b'}' if in_object => {
                        self.i += 1;
                        stack.pop();
                    }
                    b']' if !in_object => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return Err(self.fail()),
                }
            }
        }
    }

    /// `"key":` inside an ignored object, the cursor on the opening quote.
    #[inline(always)]
    fn skip_key_colon(&mut self) -> Scan<()> {
        self.expect(b'"')?;
        self.skip_string()?;
        self.ws();
        self.expect(b':')?;
        self.ws();
        Ok(())
    }
}

/// The open containers of an ignored value (true: object), 64 levels in a word, deeper in a `Vec`.
#[derive(Default)]
struct BitStack {
    bits: u64,
    depth: usize,
    spill: Vec<u64>,
}

impl BitStack {
    #[inline(always)]
    fn push(&mut self, object: bool) {
        if self.depth > 0 && self.depth % 64 == 0 {
            self.spill.push(self.bits);
            self.bits = 0;
        }
        self.bits = (self.bits << 1) | u64::from(object);
        self.depth += 1;
    }

    #[inline(always)]
    fn top(&self) -> Option<bool> {
        (self.depth > 0).then_some(self.bits & 1 == 1)
    }

    #[inline(always)]
    fn pop(&mut self) {
        self.depth -= 1;
        self.bits >>= 1;
        if self.depth > 0 && self.depth % 64 == 0 {
            self.bits = self.spill.pop().unwrap_or(0);
        }
    }
}

/// A number as serde_json classifies and converts it, for [`Scanner::number_slow`].
struct SerdeNumber<'a>(Any<'a>);

impl<'de, 'a> serde::Deserialize<'de> for SerdeNumber<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = SerdeNumber<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(SerdeNumber(Any::U64(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(SerdeNumber(Any::I64(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(SerdeNumber(Any::F64(v)))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_serde_decoder_on_a_quirky_list() {
        let body = br#"[{"id": 1, "event_type": {"id": 3}}, "junk", {"id": "x", "event_type": {"id": 3}},
                        {"id": 2, "event_type": null}, {"id": 18446744073709551615, "event_type": {"id": 0}},
                        {"i\u0064": -0, "event_type": 7.0, "organisation": {"description": "d", "name": null, "id": 1e2}},
                        [[[[[[[[[[[[]]]]]]]]]]]], {"id": 1.5e1, "event_type": {"id": "4 "}, "alert": " YES "}]"#;
        assert_eq!(decode_event_list(body).unwrap(), super::super::model::serde_decode_event_list(body).unwrap());
    }

    /// Each element of `body` (a list) as the scanner reads it: the id, or the reason and the id's text.
    fn ids(body: &str) -> Vec<Result<u64, (&'static str, Option<String>)>> {
        let list = decode_event_list(body.as_bytes()).unwrap();
        assert_eq!(Some(&list), super::super::model::serde_decode_event_list(body.as_bytes()).ok().as_ref());
        list.into_iter().map(|e| e.map(|e| e.id).map_err(|u| (u.reason, u.invalid_id.map(|t| t.to_string())))).collect()
    }

    #[test]
    fn ids_are_signed_64_bit() {
        let element = |id: &str| format!(r#"{{"id":{id},"event_type":{{"id":1}}}}"#);
        let valid = ["0", "-0", "1", "9223372036854775807", "5.0", "9.2e18", r#""5""#, r#"" 42 ""#];
        let body = format!("[{}]", valid.map(element).join(","));
        let want = [0, 0, 1, i64::MAX as u64, 5, 9_200_000_000_000_000_000, 5, 42];
        assert_eq!(ids(&body), want.map(Ok));
        let invalid = [
            "-1",
            "-5",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "1e19",
            "5.5",
            r#""-5""#,
            r#""9223372036854775808""#,
            r#""x""#,
            "false",
            "[]",
            r#"{"a":[1]}"#,
        ];
        let body = format!("[{}]", invalid.map(element).join(","));
        assert_eq!(ids(&body), invalid.map(|text| Err(("invalid_id", Some(text.to_string())))));
        let missing = [r#"{"event_type":{"id":1}}"#, r#"{"id":null,"event_type":{"id":1}}"#];
        assert_eq!(ids(&format!("[{}]", missing.join(","))), [Err(("missing_id", None)), Err(("missing_id", None))]);
        // An id that is not UTF-8 throughout, even where nothing is read, is a malformed value.
        for body in
            [&b"[{\"id\":[\"\xff\"],\"event_type\":{\"id\":1}}]"[..], b"[{\"id\":{\"a\":\"\xff\"},\"event_type\":1}]"]
        {
            let list = decode_event_list(body).unwrap();
            assert_eq!(list[0].as_ref().map_err(|u| u.reason), Err("malformed_value"));
            assert_eq!(Some(list), super::super::model::serde_decode_event_list(body).ok());
        }
    }

    #[test]
    fn errors_name_category_and_position() {
        let e = decode_event_list(b"[{\"id\":1,}]").unwrap_err();
        assert_eq!(e.to_string(), "malformed JSON at line 1 column 10");
        let e = decode_event_list(b"[\n{\"id\":1").unwrap_err();
        assert_eq!(e.to_string(), "truncated JSON at line 2 column 8");
        assert_eq!(decode_event_list(b"{}").unwrap_err().category(), "unexpected JSON shape");
        assert_eq!(decode_event_list(b"").unwrap_err().category(), "truncated JSON");
    }

    #[test]
    fn deep_ignored_nesting_is_fine() {
        let depth = 100_000;
        let body = format!("[{{\"x\":{}1{}}}]", "[{\"a\":".repeat(depth), "}]".repeat(depth));
        assert_eq!(decode_event_list(body.as_bytes()).unwrap().len(), 1);
    }
}
