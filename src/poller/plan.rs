//! The poll planner: which page of emnify's event list to ask for next, given what emnify answered.
//!
//! Sans-IO: it is fed emnify's time, the answers' paging headers and what counting found on each page,
//! and says which request comes next; it never does I/O or reads a clock.
//!
//! # The plan
//! Every walk asks for one query, the *anchor*: events from `from` (at least `overlap` before the
//! previous poll's end) until emnify's now, in ascending ids. The planner keeps `read`: how many
//! distinct records emnify has ever returned for the anchor's query. Since `until` only grows and
//! every query ever asked ends at or before it, each record read is counted there exactly once, so
//! `read == X-Total-Count` means every record the query holds has been read (records are not deleted
//! inside the overlap: retention is 30 days). A walk therefore stops as soon as `read` reaches the
//! count on the walk's first page (and the page just read held a record read before: a count that
//! understates does not end a walk while it is still finding new records). A walk starts at the last
//! page and goes backwards: where emnify's ids grow with arrival, everything new — late arrivals
//! stamped with an older time included — is on the last pages, so an event is read about once.
//!
//! When the window moves on, the anchor moves with it (not every poll: once it lags by `overlap / 4`
//! after a poll that found records, by `overlap` after a quiet one): a request for the count of the
//! new, shorter query, between two counts of the old one that both equal `read`, proves the new query
//! held only records already read at that moment, so its `read` is that count. Otherwise the anchor
//! stays and the move is tried again next poll. It never moves while emnify's clock is unconfirmed
//! (after a restart with no `Date` yet, or a first `Date` far off): the windows may be running ahead,
//! and a start moved there would lie past ground not yet read. An
//! anchor nothing was ever read from moves without asking (an idle poll is one request). An old count
//! below `read` means records read have gone (retention, with a lookback near 30 days): a new anchor
//! from the window's start replaces it, and the next poll walks it to its end.
//!
//! A new anchor (the first poll, after a restart or a failed first walk) is walked to its end; its
//! `read` is the distinct records of that walk. Without `X-Total-Count` every walk goes to the end.
//!
//! Pages shift while they are read (records arrive, the oldest expire). In ascending order an arrival
//! lands after the last page and moves none of the pages a backward walk has still to read; an expiry
//! at the oldest end moves records towards pages not yet read (read twice: a duplicate, harmless).
//! Highest ids first, every arrival would push every page one record on, and each page would repeat
//! the end of the one before (2 to 3 pages in 30 at 3,000 events a second). When emnify ignores `sort`
//! and answers highest ids first, the plan walks forwards from page 1 instead (exact, dearer); it is
//! shown in [`Plan::sort_honoured`] and logged once by the shell.

use crate::emnify::PageQuery;

/// How the planner walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanSettings {
    /// `per_page` asked for (emnify may clamp it).
    pub page_size: u32,
    /// Each window starts at least this long (seconds) before the previous poll's end.
    pub overlap_secs: i64,
    /// Safety stop for a walk with broken paging headers.
    pub max_pages: u32,
    /// The order asked for: highest ids first (`sort=-id`), or ascending (`sort=id`, the poller's
    /// choice): see the module docs.
    pub newest_first: bool,
}

/// What one answer's paging headers said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Headers {
    pub total_count: Option<u64>,
    pub total_pages: Option<u32>,
    /// `X-Current-Page`: the page served, which is the last one when the page asked for is past the end.
    pub current_page: Option<u32>,
}

/// What counting found on one page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageSeen {
    /// Records on the page, readable or not.
    pub len: u32,
    /// Records not seen before in this walk (non-objects, which cannot be told apart, not included).
    pub new_in_walk: u64,
    /// Records never read by a poll before (counted now, or counted from a push and read now first).
    pub new_to_polling: u64,
    /// Ids on the page in the order given, as far as they tell: `Some(true)` when the first readable id
    /// is above the last one.
    pub descending: Option<bool>,
    /// The same content as the page before (emnify serves the last page again past the end).
    pub repeated: bool,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask for this page; its answer goes to [`Plan::page`] (or [`Plan::count`] when `per_page` is 1
    /// and it was asked for a count).
    Fetch(PageQuery),
    /// Ask for this query's count alone (a page of one record; the record is counted like any other).
    Count(PageQuery),
    /// The poll is complete: the window up to `until` is read.
    Done { until: i64, keep_from: i64 },
}

/// The query every walk asks: events from `from` to `until` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    from: i64,
    until: i64,
    /// Distinct records emnify returned for this query, ever (exact: see the module docs).
    read: u64,
    /// Whether `read` is established (else the walk goes to the end and sets it).
    established: bool,
}

/// Where a poll is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Walking the anchor; `page` was asked for last.
    Walking {
        page: u32,
        pages: u32,
        read_in_walk: u64,
        pass: u32,
        /// Walking backwards (emnify ignores `sort=-id`) down to this page; `None`: forwards.
        bottom: Option<u32>,
    },
    /// Moving the anchor to `from`: its count was asked for, then the old query's count again.
    MoveProbe {
        from: i64,
    },
    MoveConfirm {
        from: i64,
        count: u64,
    },
}

/// The planner.
#[derive(Debug, Clone)]
pub struct Plan {
    settings: PlanSettings,
    anchor: Option<Anchor>,
    phase: Phase,
    /// The window this poll must cover from (`overlap` before the cursor).
    target_from: i64,
    /// `None` until an answer showed it; `Some(false)`: emnify answers in the other order.
    sort_honoured: Option<bool>,
    /// Records a full page holds, as seen (emnify may clamp `per_page`).
    page_len: u32,
    /// The last count seen for the anchor.
    count: Option<u64>,
    /// The last `X-Total-Pages` seen in this walk.
    total_pages: Option<u32>,
    /// How much the anchor's count grew from one poll's first page to the next: where the last page
    /// is likely to be now, for a walk that starts there.
    growth: u64,
    /// The count on the first page of this pass: what the pass must have read to stop. Records that
    /// arrive while it reads land above the pages it reads next (newest first), so waiting for the
    /// latest count would walk on to the end at a high event rate; the next poll finds them.
    pass_count: Option<u64>,
    /// What this poll cost, for its report.
    pub stats: PollStats,
    /// Whether this poll read a record no poll had read before.
    found_new: bool,
    /// Whether emnify's clock is confirmed (readings that agree over time): only then does the anchor
    /// move, since on a clock that ran ahead its new start would lie past ground not yet read.
    clock_confirmed: bool,
}

/// Passes of one walk at most in a poll: a second one from the newest end when records arrived while
/// the first was read (found in the same poll); what still arrives is left to the next poll.
const MAX_PASSES: u32 = 2;

/// What one poll cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Page requests, including the first page of each walk.
    pub pages: u32,
    /// First pages of walks of a query read before: each learns its count.
    pub probes: u32,
    /// Requests for a count alone, to move the anchor (two or three a move).
    pub moves: u32,
    /// Walks whose first page's count showed records not read before (new ones, late ones included).
    pub rereads: u32,
    /// Passes of the walk (2 when records arrived while it was read).
    pub passes: u32,
}

impl Plan {
    pub fn new(settings: PlanSettings) -> Self {
        Plan {
            settings,
            anchor: None,
            phase: Phase::Idle,
            target_from: 0,
            sort_honoured: None,
            page_len: settings.page_size.max(1),
            count: None,
            total_pages: None,
            growth: 0,
            pass_count: None,
            stats: PollStats::default(),
            found_new: false,
            clock_confirmed: true,
        }
    }

    /// Says whether emnify's clock, on which the next poll's window is planned, is confirmed.
    pub fn set_clock_confirmed(&mut self, confirmed: bool) {
        self.clock_confirmed = confirmed;
    }

    /// Whether emnify sorts by id in the order asked; `None` until an answer told.
    pub fn sort_honoured(&self) -> Option<bool> {
        self.sort_honoured
    }

    /// Whether answers come in ascending ids (as asked, or against what was asked), as far as known.
    fn ascending(&self) -> bool {
        self.sort_honoured.unwrap_or(true) != self.settings.newest_first
    }

    /// Starts a poll at emnify's time `now_secs` (rounded up), counting from `floor_secs`, the previous
    /// poll having ended at `cursor` (its `until`). Returns the first step.
    pub fn start(&mut self, now_secs: i64, floor_secs: i64, cursor: Option<i64>) -> Step {
        self.stats = PollStats { pages: 1, passes: 1, ..PollStats::default() };
        self.found_new = false;
        self.total_pages = None;
        self.pass_count = None;
        // A cursor ahead of emnify's now (its clock was stepped back) was read while that ground was
        // still the future: the window starts from now again, so no stretch goes unread.
        let cursor = cursor.map(|c| c.min(now_secs));
        let target_from = cursor.map_or(floor_secs, |c| c.saturating_sub(self.settings.overlap_secs)).max(floor_secs);
        self.target_from = target_from;
        let until = now_secs.max(floor_secs);
        // `until` never goes back while the anchor lives: every record read stays inside its query.
        match &mut self.anchor {
            // An anchor that ends after emnify's now was read on a clock that ran ahead: a new one.
            Some(anchor) if anchor.from <= target_from && anchor.from >= floor_secs && anchor.until <= until + 2 => {
                anchor.until = anchor.until.max(until);
            }
            _ => {
                self.anchor = Some(Anchor { from: target_from, until, read: 0, established: false });
                self.count = None;
            }
        }
        if self.anchor.is_some_and(|a| a.established) && self.count.is_some() {
            self.stats.probes += 1;
        }
        let first = self.first_page();
        self.phase = Phase::Walking { page: first, pages: 1, read_in_walk: 0, bottom: None, pass: 1 };
        Step::Fetch(self.query(first, self.settings.page_size))
    }

    /// Pages the walk will need after the one asked for last, as far as emnify's count says (at most
    /// `n`): fetched ahead while that one is counted. Empty while nothing says so.
    pub fn lookahead(&self, n: usize) -> Vec<PageQuery> {
        let Phase::Walking { page, bottom, .. } = self.phase else { return Vec::new() };
        let (Some(anchor), Some(count)) = (self.anchor, self.count) else { return Vec::new() };
        // The walk stops at the count on its first page: records that arrive while it reads are left to
        // the next poll, so pages fetched ahead for them would be wasted.
        let count = self.pass_count.unwrap_or(count);
        let needed = if anchor.established {
            // Records not yet read, each page holding up to `page_len` of them.
            usize::try_from(count.saturating_sub(anchor.read).div_ceil(u64::from(self.page_len.max(1))))
                .unwrap_or(usize::MAX)
                .saturating_sub(1)
        } else {
            usize::MAX
        };
        let pages: Vec<u32> = match bottom {
            Some(bottom) => (bottom..page).rev().collect(),
            None => match self.total_pages {
                Some(total) => (page.saturating_add(1)..=total).collect(),
                None => Vec::new(),
            },
        };
        pages.into_iter().take(n.min(needed)).map(|p| self.query(p, self.settings.page_size)).collect()
    }

    /// A poll ended early (a failed request): what was read stays read; an anchor whose first walk did
    /// not finish starts over.
    pub fn abandon(&mut self) {
        if self.anchor.is_some_and(|a| !a.established) {
            self.anchor = None;
        }
        self.phase = Phase::Idle;
    }

    fn anchor(&self) -> Anchor {
        self.anchor.unwrap_or(Anchor { from: self.target_from, until: self.target_from, read: 0, established: false })
    }

    fn query(&self, page: u32, per_page: u32) -> PageQuery {
        let a = self.anchor();
        PageQuery { page, per_page, from: a.from, until: a.until, newest_first: self.settings.newest_first }
    }

    /// Where a walk starts: page 1 when emnify answers newest first, else the last page. Records
    /// arrived since the last count, so the guess reaches past it by as much again as the count grew
    /// last time, and one page more: emnify serves the last page for a page past the end (documented),
    /// so a guess too far costs nothing, and one too short costs a page.
    fn first_page(&self) -> u32 {
        match (self.ascending(), self.count) {
            (true, Some(count)) => {
                self.last_page(count.saturating_add(self.growth.saturating_mul(2))).saturating_add(1)
            }
            _ => 1,
        }
    }

    fn last_page(&self, count: u64) -> u32 {
        u32::try_from(count.div_ceil(u64::from(self.page_len.max(1)))).unwrap_or(u32::MAX).max(1)
    }

    /// A page of the walk was read and counted. Returns the next step.
    pub fn page(&mut self, headers: Headers, seen: PageSeen) -> Step {
        let Phase::Walking { page, pages, read_in_walk, mut bottom, pass } = self.phase else {
            return self.finish();
        };
        // Past the end emnify serves the last page, and says which it is (or its count does).
        let served = headers.current_page.or_else(|| headers.total_count.map(|c| self.last_page(c)));
        let page = served.filter(|served| (1..page).contains(served)).unwrap_or(page);
        let first_of_walk = pages == 1;
        let Some(mut anchor) = self.anchor else { return self.finish() };
        let read_in_walk = read_in_walk + seen.new_in_walk;
        self.found_new |= seen.new_to_polling > 0;
        let read_before = anchor.read;
        if anchor.established {
            anchor.read += seen.new_to_polling;
        } else {
            anchor.read = anchor.read.max(read_in_walk);
        }
        self.anchor = Some(anchor);
        if let (true, 1, Some(now), Some(before)) = (first_of_walk, pass, headers.total_count, self.count) {
            self.growth = now.saturating_sub(before);
        }
        if headers.total_count.is_some() {
            self.count = headers.total_count;
        }
        self.total_pages = headers.total_pages.or(self.total_pages);
        let count = headers.total_count;
        // Page 1 of more is full: it shows how many records one holds (emnify may clamp `per_page`).
        if page == 1 && count.is_some_and(|c| c > u64::from(seen.len)) && seen.len > 0 {
            self.page_len = seen.len;
        }
        if self.sort_honoured.is_none() {
            self.sort_honoured = seen.descending.map(|descending| descending == self.settings.newest_first);
        }
        // The count shows records not read before this page: the walk reads further than its first page
        // unless this one held them all.
        if first_of_walk && pass == 1 && anchor.established && count.is_some_and(|c| c > read_before) {
            self.stats.rereads += 1;
        }
        if first_of_walk {
            self.pass_count = count;
        }
        // Newest first after all, on a page past the first (asked for as the last): from page 1 instead.
        if pages == 1 && !self.ascending() && page > 1 {
            self.phase = Phase::Walking { page: 1, pages: pages + 1, read_in_walk, bottom: None, pass };
            self.stats.pages += 1;
            return Step::Fetch(self.query(1, self.settings.page_size));
        }
        // emnify answers ascending: the newest records are on the last page, which only a count tells.
        if pages == 1 && self.ascending() {
            match count {
                Some(count) => {
                    let last = self.last_page(count);
                    if last > page {
                        // Down to page 1 again even if the walk started there: records that expired
                        // meanwhile moved others onto it.
                        let bottom = Some(1);
                        self.phase = Phase::Walking { page: last, pages: pages + 1, read_in_walk, bottom, pass };
                        self.stats.pages += 1;
                        return Step::Fetch(self.query(last, self.settings.page_size));
                    }
                    bottom = Some(1);
                }
                // No count (this time): forwards from the first page, wherever the walk started.
                None if page > 1 => {
                    self.phase = Phase::Walking { page: 1, pages: pages + 1, read_in_walk, bottom: None, pass };
                    self.stats.pages += 1;
                    return Step::Fetch(self.query(1, self.settings.page_size));
                }
                None => {}
            }
        }
        let complete = anchor.established
            && self.pass_count.or(count).is_some_and(|c| anchor.read >= c)
            && (seen.new_to_polling < u64::from(seen.len) || seen.len == 0);
        // The last page served again means the end of a forward walk. Walking backwards it means the
        // pages shrank under the walk (records expired): the walk goes on down, from the real last page.
        let repeated = seen.repeated && !first_of_walk && bottom.is_none();
        let at_end = if repeated || seen.len == 0 {
            true
        } else if let Some(bottom) = bottom {
            page <= bottom
        } else {
            let full = seen.len >= self.page_len;
            match headers.total_pages {
                Some(total) => page >= total && !full,
                // Without paging headers a short page may be emnify's clamp of `per_page`, not the end: the
                // walk ends at an empty page or the last one served again (what emnify does past the end).
                None => false,
            }
        };
        if complete || at_end || pages >= self.settings.max_pages {
            if let Some(a) = &mut self.anchor {
                a.established = true;
            }
            // Records arrived while the pages were read (on pages already passed): once more from the
            // newest end, stopping as soon as they are found.
            let unread = self.anchor.zip(count).is_some_and(|(a, c)| a.read < c);
            if !complete && unread && pass < MAX_PASSES && pages < self.settings.max_pages {
                let first = self.first_page();
                self.stats.passes = pass + 1;
                self.pass_count = None;
                self.stats.pages += 1;
                self.phase = Phase::Walking { page: first, pages: 1, read_in_walk, bottom: None, pass: pass + 1 };
                return Step::Fetch(self.query(first, self.settings.page_size));
            }
            return self.finish();
        }
        let next = match (bottom, count) {
            (Some(_), Some(count)) => (page - 1).min(self.last_page(count)),
            (Some(_), None) => page - 1,
            (None, _) => page + 1,
        };
        self.stats.pages += 1;
        self.phase = Phase::Walking { page: next, pages: pages + 1, read_in_walk, bottom, pass };
        Step::Fetch(self.query(next, self.settings.page_size))
    }

    /// After the walk: moves the anchor when it lags, else ends the poll.
    fn finish(&mut self) -> Step {
        let Some(anchor) = self.anchor else {
            self.phase = Phase::Idle;
            return Step::Done { until: self.target_from, keep_from: self.target_from };
        };
        // A poll that found records moves the anchor once it lags by a quarter of the overlap; a quiet
        // one leaves it (a move costs count requests) until it lags by the whole overlap.
        let overlap = self.settings.overlap_secs.max(1);
        let lag = if self.found_new { (overlap / 4).max(1) } else { overlap };
        let complete = self.count.is_some_and(|c| anchor.read >= c);
        if anchor.established && complete && self.clock_confirmed && self.target_from - anchor.from >= lag {
            if anchor.read == 0 {
                // Nothing was ever read from the anchor (an idle workspace): nothing was read from the
                // shorter query either, so it moves without asking for counts.
                self.anchor = Some(Anchor { from: self.target_from, ..anchor });
                return self.done();
            }
            self.phase = Phase::MoveProbe { from: self.target_from };
            self.stats.moves += 1;
            let query = PageQuery { from: self.target_from, ..self.query(1, 1) };
            return Step::Count(query);
        }
        self.done()
    }

    fn done(&mut self) -> Step {
        self.phase = Phase::Idle;
        let anchor = self.anchor();
        Step::Done { until: anchor.until, keep_from: anchor.from }
    }

    /// The answer to a [`Step::Count`]: `total_count` of the query asked for, and how many records on
    /// its page (of one) no poll had read before. Such a record (one that arrived since the walk, where
    /// the order puts the newest first) lies inside the anchor's query too, new or old one alike: it
    /// is read now, so `read` counts it, or it would fall one short of the count for good.
    pub fn count(&mut self, total_count: Option<u64>, new_to_polling: u64) -> Step {
        if let Some(anchor) = &mut self.anchor {
            anchor.read += new_to_polling;
        }
        match self.phase {
            Phase::MoveProbe { from } => match total_count {
                Some(count) => {
                    self.phase = Phase::MoveConfirm { from, count };
                    self.stats.moves += 1;
                    Step::Count(self.query(1, 1))
                }
                None => self.done(),
            },
            // This page's record no poll had read arrived after the new query was counted, and may lie
            // in it or not: the anchor stays.
            Phase::MoveConfirm { .. } if new_to_polling > 0 => self.done(),
            Phase::MoveConfirm { from, count } => {
                let anchor = self.anchor();
                // The old query still holds exactly what was read, before and after the new one was
                // counted: the new one held only records read by then.
                if total_count == Some(anchor.read) {
                    self.anchor = Some(Anchor { from, until: anchor.until, read: count, established: true });
                    self.count = Some(count);
                } else if total_count.is_some_and(|c| c < anchor.read) {
                    // Records read from the old query have gone (retention, with a lookback near 30 days):
                    // its `read` no longer says what a count means, and never will while they go. A new
                    // anchor from the window's start takes its place, walked to its end by the next poll
                    // (whose walk counts its distinct records afresh).
                    self.anchor = Some(Anchor { from, until: anchor.until, read: 0, established: false });
                    self.count = None;
                }
                self.done()
            }
            _ => self.done(),
        }
    }
}

#[cfg(test)]
mod tests;
