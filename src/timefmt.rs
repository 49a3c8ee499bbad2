//! Time as text: lenient parsing of emnify timestamps, the `q` filter's dates, and durations like `30s`.
//!
//! emnify timestamps come as `2021-10-27T11:59:29.000Z`, `2021-10-27T15:17:23Z`,
//! `2017-10-26T07:28:00.000+0000`, `2021-10-06 10:42:58` (UTC, no zone) and even
//! `5/8/2017 10:56:25 AM`; all are read here as Unix milliseconds.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// A cursor over ASCII bytes with the few primitives the formats need.
struct Scan<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scan<'_> {
    /// Reads between `min` and `max` digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.pos;
        let mut value: u32 = 0;
        while self.pos < self.bytes.len() && self.pos - start < max {
            let b = self.bytes[self.pos];
            if !b.is_ascii_digit() {
                break;
            }
            value = value * 10 + u32::from(b - b'0');
            self.pos += 1;
        }
        (self.pos - start >= min).then_some(value)
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn to_millis(date: (i64, u32, u32), time: (u32, u32, u32), millis: u32, offset_secs: i64) -> Option<i64> {
    let (year, month, day) = date;
    let (hour, minute, second) = time;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // 60 admits a leap second, which is folded into the next second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second)
        - offset_secs;
    Some(secs * 1000 + i64::from(millis))
}

/// Parses an emnify timestamp into Unix milliseconds (UTC when no zone is given).
pub fn parse_timestamp_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.contains('/') {
        return parse_us_format(text);
    }
    let mut s = Scan { bytes: text.as_bytes(), pos: 0 };
    let year = s.digits(4, 4)?;
    s.eat(b'-').then_some(())?;
    let month = s.digits(1, 2)?;
    s.eat(b'-').then_some(())?;
    let day = s.digits(1, 2)?;
    if !(s.eat(b'T') || s.eat(b't') || s.eat(b' ')) {
        return None;
    }
    let hour = s.digits(1, 2)?;
    s.eat(b':').then_some(())?;
    let minute = s.digits(2, 2)?;
    let second = if s.eat(b':') { s.digits(2, 2)? } else { 0 };
    let mut millis = 0;
    if s.eat(b'.') || s.eat(b',') {
        let start = s.pos;
        let fraction = s.digits(1, 9)?;
        let len = (s.pos - start) as u32;
        millis = if len >= 3 { fraction / 10u32.pow(len - 3) } else { fraction * 10u32.pow(3 - len) };
    }
    let offset = match s.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            s.pos += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            s.pos += 1;
            let hours = s.digits(2, 2)?;
            s.eat(b':');
            let minutes = s.digits(0, 2).unwrap_or(0);
            let secs = i64::from(hours * 3600 + minutes * 60);
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        Some(_) => return None,
    };
    s.done().then_some(())?;
    to_millis((i64::from(year), month, day), (hour, minute, second), millis, offset)
}

/// `M/D/YYYY h:mm:ss AM` as in emnify's older SDK examples (UTC).
fn parse_us_format(text: &str) -> Option<i64> {
    let mut s = Scan { bytes: text.as_bytes(), pos: 0 };
    let month = s.digits(1, 2)?;
    s.eat(b'/').then_some(())?;
    let day = s.digits(1, 2)?;
    s.eat(b'/').then_some(())?;
    let year = s.digits(4, 4)?;
    s.eat(b' ').then_some(())?;
    let mut hour = s.digits(1, 2)?;
    s.eat(b':').then_some(())?;
    let minute = s.digits(2, 2)?;
    let second = if s.eat(b':') { s.digits(2, 2)? } else { 0 };
    while s.eat(b' ') {}
    let rest = &text[s.pos..];
    if rest.eq_ignore_ascii_case("PM") {
        if hour > 12 {
            return None;
        }
        if hour < 12 {
            hour += 12;
        }
    } else if rest.eq_ignore_ascii_case("AM") {
        if hour > 12 {
            return None;
        }
        if hour == 12 {
            hour = 0;
        }
    } else if !rest.is_empty() {
        return None;
    }
    to_millis((i64::from(year), month, day), (hour, minute, second), 0, 0)
}

fn split_millis(millis: i64) -> (i64, u32, u32, u32, u32) {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, sod, ms)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the date form the `q` filter's `from`/`until` take.
pub fn format_filter_date(unix_secs: i64) -> String {
    let (y, m, d, sod, _) = split_millis(unix_secs * 1000);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form emnify's current API uses for event timestamps.
pub fn format_event_timestamp(unix_millis: i64) -> String {
    let (y, m, d, sod, ms) = split_millis(unix_millis);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// An HTTP `Date` header (RFC 9110 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) as Unix milliseconds.
/// The obsolete forms RFC 9110 still lets recipients accept are read as absent: servers must not send them.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let (weekday, rest) = text.split_once(", ")?;
    let mut parts = rest.split(' ');
    let (day, month, year, time, zone) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || zone != "GMT" || day.len() != 2 || year.len() != 4 || time.len() != 8 {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let number = |t: &str| t.bytes().all(|b| b.is_ascii_digit()).then(|| t.parse::<u32>().ok()).flatten();
    let mut hms = time.split(':');
    let (hour, minute, second) = (number(hms.next()?)?, number(hms.next()?)?, number(hms.next()?)?);
    let millis = to_millis((i64::from(number(year)?), month, number(day)?), (hour, minute, second), 0, 0)?;
    // The weekday is redundant; one that does not fit means the header is not what it claims.
    (format_http_date(millis).split_once(',')?.0 == weekday).then_some(millis)
}

/// Unix milliseconds as an HTTP `Date` header (IMF-fixdate; the milliseconds are dropped).
pub fn format_http_date(unix_millis: i64) -> String {
    let (y, m, d, sod, _) = split_millis(unix_millis);
    let weekday = WEEKDAYS[unix_millis.div_euclid(86_400_000).rem_euclid(7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!("{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT", sod / 3600, sod / 60 % 60, sod % 60)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A duration as whole milliseconds, saturating (for arithmetic with Unix-millisecond times).
pub fn duration_millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Durations like `30s`, `1m30s`, `500ms`; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 30s, 5m, 1h30m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_round_trip_and_reject_what_they_are_not() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777_000));
        assert_eq!(format_http_date(784_111_777_999), "Sun, 06 Nov 1994 08:49:37 GMT");
        for millis in [0, 951_782_400_000, 1_764_547_200_000, 4_102_444_799_000] {
            assert_eq!(parse_http_date(&format_http_date(millis)), Some(millis));
        }
        for bad in [
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    const T: i64 = 1_635_335_969_000; // 2021-10-27T11:59:29Z

    #[test]
    fn reads_every_documented_form() {
        assert_eq!(parse_timestamp_millis("2021-10-27T11:59:29.000Z"), Some(T));
        assert_eq!(parse_timestamp_millis("2021-10-27T11:59:29Z"), Some(T));
        assert_eq!(parse_timestamp_millis("2021-10-27 11:59:29"), Some(T));
        assert_eq!(parse_timestamp_millis("2021-10-27T11:59:29.123Z"), Some(T + 123));
        assert_eq!(parse_timestamp_millis("2021-10-27T11:59:29.5Z"), Some(T + 500));
        assert_eq!(parse_timestamp_millis("2021-10-27T11:59:29.123456Z"), Some(T + 123));
        assert_eq!(parse_timestamp_millis("2021-10-27T13:59:29.000+0200"), Some(T));
        assert_eq!(parse_timestamp_millis("2021-10-27T09:59:29-02:00"), Some(T));
        assert_eq!(parse_timestamp_millis("2021-10-27T11:59:29.000+0000"), Some(T));
        assert_eq!(parse_timestamp_millis("10/27/2021 11:59:29 AM"), Some(T));
        assert_eq!(parse_timestamp_millis("5/8/2017 10:56:25 PM"), parse_timestamp_millis("2017-05-08 22:56:25"));
        assert_eq!(parse_timestamp_millis("1/1/2020 12:00:00 AM"), parse_timestamp_millis("2020-01-01 00:00:00"));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            "",
            "now",
            "2021-13-01T00:00:00Z",
            "2021-02-30 00:00:00",
            "2021-10-27T11:59:29Zjunk",
            "9/9/99",
            "2021-10-27",
            "2021-10-27T25:00:00Z",
            "13/40/2020 1:00:00 AM",
            "１２３",
        ] {
            assert_eq!(parse_timestamp_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format_filter_date(T / 1000), "2021-10-27T11:59:29Z");
        assert_eq!(format_event_timestamp(T + 7), "2021-10-27T11:59:29.007Z");
        for ms in [0, 951_782_400_000, 4_102_444_799_999, T] {
            assert_eq!(parse_timestamp_millis(&format_event_timestamp(ms)), Some(ms));
        }
        assert_eq!(format_filter_date(0), "1970-01-01T00:00:00Z");
    }
}
