//! Faults the simulator injects into its answers, drawn per request from a seeded schedule.
//!
//! Written as a spec like `429=0.1,retry-after=2,5xx=0.05,5xx-retry-after=20,reset=0.02,stall=0.02`,
//! each number the chance that a request meets that fault (see [`FaultConfig`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::rng::SplitMix64;

/// Chances (0..=1) of each fault, per request unless said otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// `429`: rate limited.
    pub rate_limit: f64,
    /// `retry-after`: seconds sent in `Retry-After` with a 429; absent when `None`.
    pub retry_after_secs: Option<u64>,
    /// `5xx`: a request starts a burst of 500/502/503 answers.
    pub server_error: f64,
    /// `5xx-burst`: how many requests in a row such a burst lasts.
    pub server_error_burst: u32,
    /// `5xx-retry-after`: seconds sent in `Retry-After` with those 500/502/503 answers; absent when `None`.
    pub server_error_retry_after_secs: Option<u64>,
    /// `retry-after-form=date`: `Retry-After` is sent as an HTTP-date (the answer's `Date` plus the
    /// seconds) instead of as seconds (`retry-after-form=seconds`, the default).
    pub retry_after_as_date: bool,
    /// `reset`: the connection is closed without an answer.
    pub reset: f64,
    /// `stall`: half the body is sent, then nothing for `stall_for`.
    pub stall: f64,
    /// `stall-for`: how long a stalled body waits (set it past the client's timeout).
    pub stall_for: Duration,
    /// `truncate`: status 200 with the JSON body cut short.
    pub truncate: f64,
    /// `malformed`: status 200 with a syntax error in the JSON body.
    pub malformed: f64,
    /// `html`: status 200 with an HTML error page (a proxy in the way).
    pub html: f64,
    /// `401`: the JWT is refused as expired or revoked (and forgotten).
    pub unauthorized: f64,
    /// `login-5xx`: `POST /api/v1/authenticate` fails with 500.
    pub login_error: f64,
    /// `login-429`: `POST /api/v1/authenticate` is rate limited.
    pub login_rate_limit: f64,
    /// `no-paging`: an event list answer comes without paging headers.
    pub missing_paging: f64,
    /// `bad-paging`: `X-Total-Pages` and `X-Total-Count` understate or overstate the list.
    pub wrong_paging: f64,
    /// `dup`: a page starts with the last event of the page before (the same event on two pages).
    pub duplicate: f64,
    /// `late`: while a page is served, events arrive stamped up to a minute in the past.
    pub late: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            rate_limit: 0.0,
            retry_after_secs: None,
            server_error: 0.0,
            server_error_burst: 3,
            server_error_retry_after_secs: None,
            retry_after_as_date: false,
            reset: 0.0,
            stall: 0.0,
            stall_for: Duration::from_secs(2),
            truncate: 0.0,
            malformed: 0.0,
            html: 0.0,
            unauthorized: 0.0,
            login_error: 0.0,
            login_rate_limit: 0.0,
            missing_paging: 0.0,
            wrong_paging: 0.0,
            duplicate: 0.0,
            late: 0.0,
        }
    }
}

impl FaultConfig {
    /// No faults at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// A random mix, for property tests: each fault on or off, with a modest chance when on.
    pub fn random(rng: &mut SplitMix64, stall_for: Duration) -> Self {
        let mut pick = |max: f64| if rng.chance(0.5) { rng.unit() * max } else { 0.0 };
        FaultConfig {
            rate_limit: pick(0.15),
            retry_after_secs: None,
            server_error: pick(0.1),
            server_error_burst: 3,
            server_error_retry_after_secs: None,
            retry_after_as_date: false,
            reset: pick(0.08),
            stall: pick(0.05),
            stall_for,
            truncate: pick(0.08),
            malformed: pick(0.08),
            html: pick(0.08),
            unauthorized: pick(0.08),
            login_error: pick(0.2),
            login_rate_limit: pick(0.2),
            missing_paging: pick(0.3),
            wrong_paging: pick(0.3),
            duplicate: pick(0.3),
            late: pick(0.3),
        }
    }
}

impl FromStr for FaultConfig {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let mut config = FaultConfig::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| format!("'{part}': expected NAME=VALUE"))?;
            let chance = || -> Result<f64, String> {
                let v: f64 = value.trim().parse().map_err(|_| format!("{name}: '{value}' is not a number"))?;
                if (0.0..=1.0).contains(&v) {
                    Ok(v)
                } else {
                    Err(format!("{name}: a chance must be between 0 and 1"))
                }
            };
            match name.trim() {
                "429" => config.rate_limit = chance()?,
                "retry-after" => {
                    config.retry_after_secs = Some(value.trim().parse().map_err(|_| "retry-after: seconds")?);
                }
                "5xx" => config.server_error = chance()?,
                "5xx-burst" => config.server_error_burst = value.trim().parse().map_err(|_| "5xx-burst: a count")?,
                "5xx-retry-after" => {
                    config.server_error_retry_after_secs =
                        Some(value.trim().parse().map_err(|_| "5xx-retry-after: seconds")?);
                }
                "retry-after-form" => {
                    config.retry_after_as_date = match value.trim() {
                        "date" => true,
                        "seconds" => false,
                        _ => return Err("retry-after-form: 'seconds' or 'date'".to_string()),
                    }
                }
                "reset" => config.reset = chance()?,
                "stall" => config.stall = chance()?,
                "stall-for" => config.stall_for = crate::timefmt::parse_duration(value)?,
                "truncate" => config.truncate = chance()?,
                "malformed" => config.malformed = chance()?,
                "html" => config.html = chance()?,
                "401" => config.unauthorized = chance()?,
                "login-5xx" => config.login_error = chance()?,
                "login-429" => config.login_rate_limit = chance()?,
                "no-paging" => config.missing_paging = chance()?,
                "bad-paging" => config.wrong_paging = chance()?,
                "dup" => config.duplicate = chance()?,
                "late" => config.late = chance()?,
                other => return Err(format!("unknown fault '{other}'")),
            }
        }
        Ok(config)
    }
}

impl fmt::Display for FaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "429={:.3},5xx={:.3},reset={:.3},stall={:.3},truncate={:.3},malformed={:.3},html={:.3},401={:.3},\
             login-5xx={:.3},login-429={:.3},no-paging={:.3},bad-paging={:.3},dup={:.3},late={:.3}",
            self.rate_limit,
            self.server_error,
            self.reset,
            self.stall,
            self.truncate,
            self.malformed,
            self.html,
            self.unauthorized,
            self.login_error,
            self.login_rate_limit,
            self.missing_paging,
            self.wrong_paging,
            self.duplicate,
            self.late
        )?;
        if let Some(s) = self.retry_after_secs {
            write!(f, ",retry-after={s}")?;
        }
        if let Some(s) = self.server_error_retry_after_secs {
            write!(f, ",5xx-retry-after={s}")?;
        }
        if self.retry_after_as_date {
            write!(f, ",retry-after-form=date")?;
        }
        Ok(())
    }
}

/// What goes wrong with one API request (login aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// With the seconds to send in `Retry-After`, if any.
    RateLimited(Option<u64>),
    /// The status, and the seconds to send in `Retry-After`, if any.
    ServerError(u16, Option<u64>),
    Reset,
    Stall(Duration),
    Truncate,
    Malformed,
    Html,
    Unauthorized,
}

/// The fault schedule: the configuration plus its own seeded random stream and burst state.
#[derive(Debug, Clone)]
pub struct FaultSchedule {
    pub config: FaultConfig,
    rng: SplitMix64,
    burst_left: u32,
    injected: u64,
}

impl FaultSchedule {
    pub fn new(config: FaultConfig, seed: u64) -> Self {
        FaultSchedule { config, rng: SplitMix64::new(seed ^ 0xFA17), burst_left: 0, injected: 0 }
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected
    }

    fn roll(&mut self, chance: f64) -> bool {
        let hit = chance > 0.0 && self.rng.chance(chance);
        if hit {
            self.injected += 1;
        }
        hit
    }

    /// The fault for one API request, if any.
    pub fn request(&mut self) -> Option<RequestFault> {
        if self.burst_left > 0 {
            self.burst_left -= 1;
            self.injected += 1;
            let status = [500, 502, 503][self.rng.below(3) as usize];
            return Some(RequestFault::ServerError(status, self.config.server_error_retry_after_secs));
        }
        let c = self.config.clone();
        if self.roll(c.server_error) {
            self.burst_left = c.server_error_burst.saturating_sub(1);
            return Some(RequestFault::ServerError(503, c.server_error_retry_after_secs));
        }
        if self.roll(c.rate_limit) {
            return Some(RequestFault::RateLimited(c.retry_after_secs));
        }
        if self.roll(c.reset) {
            return Some(RequestFault::Reset);
        }
        if self.roll(c.stall) {
            return Some(RequestFault::Stall(c.stall_for));
        }
        if self.roll(c.unauthorized) {
            return Some(RequestFault::Unauthorized);
        }
        if self.roll(c.truncate) {
            return Some(RequestFault::Truncate);
        }
        if self.roll(c.malformed) {
            return Some(RequestFault::Malformed);
        }
        if self.roll(c.html) {
            return Some(RequestFault::Html);
        }
        None
    }

    /// The fault for one login: `Some(status)` to refuse it.
    pub fn login(&mut self) -> Option<u16> {
        let c = self.config.clone();
        if self.roll(c.login_error) {
            Some(500)
        } else if self.roll(c.login_rate_limit) {
            Some(429)
        } else {
            None
        }
    }

    pub fn missing_paging(&mut self) -> bool {
        let c = self.config.missing_paging;
        self.roll(c)
    }

    /// `Some(delta)` pages to add to `X-Total-Pages` (negative understates).
    pub fn wrong_paging(&mut self) -> Option<i64> {
        let c = self.config.wrong_paging;
        self.roll(c).then(|| if self.rng.chance(0.5) { -1 } else { 2 })
    }

    pub fn duplicate(&mut self) -> bool {
        let c = self.config.duplicate;
        self.roll(c)
    }

    /// `Some((count, age))` of late events to add while a page is served.
    pub fn late(&mut self) -> Option<(usize, Duration)> {
        let c = self.config.late;
        if self.roll(c) {
            Some((1 + self.rng.below(20) as usize, Duration::from_secs(1 + self.rng.below(60))))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        let c: FaultConfig = "429=0.1,retry-after=2,5xx=0.05,stall=0.2,stall-for=3s,dup=1".parse().unwrap();
        assert_eq!(c.rate_limit, 0.1);
        assert_eq!(c.retry_after_secs, Some(2));
        assert_eq!(c.stall_for, Duration::from_secs(3));
        assert_eq!(c.duplicate, 1.0);
        assert!("429=2".parse::<FaultConfig>().is_err());
        assert!("colour=0.1".parse::<FaultConfig>().is_err());
        let round: FaultConfig = c.to_string().parse().unwrap();
        assert_eq!(round.rate_limit, c.rate_limit);
        let c: FaultConfig = "5xx=1,5xx-retry-after=20,retry-after-form=date".parse().unwrap();
        assert_eq!((c.server_error_retry_after_secs, c.retry_after_as_date), (Some(20), true));
        assert_eq!(c.to_string().parse::<FaultConfig>().unwrap(), c);
        assert!("retry-after-form=never".parse::<FaultConfig>().is_err());
        let mut s = FaultSchedule::new(c, 1);
        assert_eq!(s.request(), Some(RequestFault::ServerError(503, Some(20))));
        assert!(matches!(s.request(), Some(RequestFault::ServerError(_, Some(20)))));
    }

    #[test]
    fn a_burst_lasts_its_length_and_none_means_none() {
        let mut s =
            FaultSchedule::new(FaultConfig { server_error: 1.0, server_error_burst: 3, ..FaultConfig::none() }, 1);
        for _ in 0..6 {
            assert!(matches!(s.request(), Some(RequestFault::ServerError(_, None))));
        }
        let mut quiet = FaultSchedule::new(FaultConfig::none(), 1);
        assert!((0..1000).all(|_| quiet.request().is_none() && quiet.login().is_none()));
        assert_eq!(quiet.injected(), 0);
    }
}
