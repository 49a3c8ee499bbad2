//! The poll planner's unit tests: steps for given answers.

use super::*;

fn plan() -> Plan {
    Plan::new(PlanSettings { page_size: 10, overlap_secs: 100, max_pages: 1000, newest_first: true })
}

fn seen(len: u32, new: u64) -> PageSeen {
    PageSeen { len, new_in_walk: new, new_to_polling: new, descending: Some(true), repeated: false }
}

fn headers(count: u64) -> Headers {
    Headers { total_count: Some(count), total_pages: Some(count.div_ceil(10) as u32), current_page: None }
}

#[test]
fn a_new_anchor_is_walked_to_its_end_then_only_what_is_new_is_read() {
    // An overlap longer than the test's polls: the anchor never moves here.
    let mut p = Plan::new(PlanSettings { page_size: 10, overlap_secs: 1_000, max_pages: 1000, newest_first: true });
    assert!(matches!(p.start(1_000, 500, None), Step::Fetch(q) if q.page == 1 && q.from == 500));
    assert!(matches!(p.page(headers(25), seen(10, 10)), Step::Fetch(q) if q.page == 2));
    assert!(matches!(p.page(headers(25), seen(10, 10)), Step::Fetch(q) if q.page == 3));
    assert_eq!(p.page(headers(25), seen(5, 5)), Step::Done { until: 1_000, keep_from: 500 });
    // 12 new records: page 1 holds 10 of them, page 2 the other 2 and known ones.
    assert!(matches!(p.start(1_010, 500, Some(1_000)), Step::Fetch(q) if q.page == 1 && q.until == 1_010));
    assert!(matches!(p.page(headers(37), seen(10, 10)), Step::Fetch(q) if q.page == 2));
    assert_eq!(p.page(headers(37), seen(10, 2)), Step::Done { until: 1_010, keep_from: 500 });
    // Nothing new: one request.
    p.start(1_020, 500, Some(1_010));
    assert_eq!(p.page(headers(37), seen(10, 0)), Step::Done { until: 1_020, keep_from: 500 });
}

#[test]
fn a_count_that_understates_does_not_end_a_walk_that_finds_only_new_records() {
    let mut p = plan();
    p.start(1_000, 500, None);
    p.page(headers(5), seen(5, 5));
    p.start(1_010, 500, Some(1_000));
    // The count says 10, but page 1 is all new: page 2 is read too.
    assert!(matches!(p.page(headers(10), seen(10, 10)), Step::Fetch(q) if q.page == 2));
}

#[test]
fn the_anchor_moves_only_when_two_counts_of_the_old_query_agree_with_what_was_read() {
    let mut p = plan();
    p.start(1_000, 0, None);
    p.page(headers(3), seen(3, 3));
    p.start(1_200, 0, Some(1_000));
    // Lagging by 900 s: the new query's count is asked, then the old one's again.
    let step = p.page(headers(3), seen(3, 0));
    assert!(matches!(&step, Step::Count(q) if q.from == 900 && q.per_page == 1), "{step:?}");
    assert!(matches!(p.count(Some(1), 0), Step::Count(q) if q.from == 0));
    assert_eq!(p.count(Some(3), 0), Step::Done { until: 1_200, keep_from: 900 });
    // A record arrived meanwhile: the anchor stays put.
    p.start(1_400, 0, Some(1_200));
    let step = p.page(headers(1), seen(1, 0));
    assert!(matches!(&step, Step::Count(q) if q.from == 1_100), "{step:?}");
    p.count(Some(1), 0);
    assert_eq!(p.count(Some(2), 0), Step::Done { until: 1_400, keep_from: 900 });
}

#[test]
fn ascending_answers_are_walked_backwards_from_the_last_page() {
    let mut p = plan();
    p.start(1_000, 0, None);
    let ascending = PageSeen { descending: Some(false), ..seen(10, 10) };
    assert!(matches!(p.page(headers(35), ascending), Step::Fetch(q) if q.page == 4));
    assert!(matches!(p.page(headers(35), PageSeen { len: 5, ..ascending }), Step::Fetch(q) if q.page == 3));
    assert!(matches!(p.page(headers(35), ascending), Step::Fetch(q) if q.page == 2));
    // Page 1 again: an expiry since it was read would have moved records onto it.
    assert!(matches!(p.page(headers(35), ascending), Step::Fetch(q) if q.page == 1));
    assert!(matches!(p.page(headers(35), PageSeen { new_in_walk: 0, ..ascending }), Step::Done { .. }));
    assert_eq!(p.sort_honoured(), Some(false));
    // The next poll asks for the page past the last one counted: emnify serves its last page.
    assert!(matches!(p.start(1_010, 0, Some(1_000)), Step::Fetch(q) if q.page == 5));
}

#[test]
fn a_cursor_ahead_of_emnify_now_is_read_again_from_now() {
    let mut p = plan();
    p.start(10_000, 0, None);
    p.page(headers(0), seen(0, 0));
    p.start(10_010, 0, Some(10_000));
    p.page(headers(0), seen(0, 0));
    p.count(Some(0), 0);
    p.count(Some(0), 0);
    // emnify's clock stepped back an hour: the window starts an overlap before now, not the cursor.
    assert!(matches!(p.start(6_400, 0, Some(10_010)), Step::Fetch(q) if q.from == 6_300 && q.until == 6_400));
}

/// Asking ascending ids (the poller's order), a walk starts at the last page: past where the count put
/// it by as much again as the count grew last time, and one more, since emnify serves its last page
/// for any page past the end.
#[test]
fn an_ascending_walk_asks_past_the_last_page_by_the_count_s_growth() {
    let mut p = Plan::new(PlanSettings { page_size: 10, overlap_secs: 1_000, max_pages: 1000, newest_first: false });
    let ascending = |len, new| PageSeen { descending: Some(false), ..seen(len, new) };
    // The first poll knows no count: page 1, then the last page, backwards.
    assert!(matches!(p.start(1_000, 0, None), Step::Fetch(q) if q.page == 1 && !q.newest_first));
    assert!(matches!(p.page(headers(25), ascending(10, 10)), Step::Fetch(q) if q.page == 3));
    assert!(matches!(p.page(headers(25), ascending(5, 5)), Step::Fetch(q) if q.page == 2));
    assert!(matches!(p.page(headers(25), ascending(10, 10)), Step::Fetch(q) if q.page == 1));
    assert!(matches!(p.page(headers(25), ascending(10, 0)), Step::Done { .. }));
    assert_eq!(p.sort_honoured(), Some(true));
    // No growth known yet: the page after the last one counted (page 4; emnify serves page 3).
    assert!(matches!(p.start(1_010, 0, Some(1_000)), Step::Fetch(q) if q.page == 4));
    let served = Headers { current_page: Some(3), ..headers(28) };
    assert!(matches!(p.page(served, ascending(8, 3)), Step::Done { .. }));
    // Grown by 3: 28 + 6 records would fill 4 pages, so page 5 is asked.
    assert!(matches!(p.start(1_020, 0, Some(1_010)), Step::Fetch(q) if q.page == 5));
}

/// Asked for the last page in ascending order, emnify answers highest ids first (it ignores `sort`):
/// the walk starts again from page 1, the newest, and the fallback shows.
#[test]
fn highest_ids_first_against_an_ascending_ask_walk_from_page_1() {
    let mut p = Plan::new(PlanSettings { page_size: 10, overlap_secs: 1_000, max_pages: 1000, newest_first: false });
    p.start(1_000, 0, None);
    assert!(matches!(p.page(headers(25), seen(10, 10)), Step::Fetch(q) if q.page == 2));
    assert_eq!(p.sort_honoured(), Some(false));
    p.page(headers(25), seen(10, 10));
    assert!(matches!(p.page(headers(25), seen(5, 5)), Step::Done { .. }));
    // Page 1 first, not the last page.
    assert!(matches!(p.start(1_010, 0, Some(1_000)), Step::Fetch(q) if q.page == 1));
}

/// A count's page of one record may hold a record no poll read before (the newest, when emnify answers
/// highest ids first): `read` counts it, or it would stay one short of the count and every later walk
/// would go to the end. After such a record on the second count of the old query, the anchor stays.
#[test]
fn a_new_record_on_a_count_s_page_is_read() {
    let mut p = plan();
    p.start(1_000, 0, None);
    p.page(headers(3), seen(3, 3));
    p.start(1_200, 0, Some(1_000));
    assert!(matches!(p.page(headers(3), seen(3, 0)), Step::Count(_)));
    // The new query's page holds a record that arrived since the walk: 4 read now.
    assert!(matches!(p.count(Some(2), 1), Step::Count(_)));
    assert_eq!(p.count(Some(4), 0), Step::Done { until: 1_200, keep_from: 900 });
    // A new record on the old query's second count: no move, though the count agrees.
    p.start(1_400, 900, Some(1_200));
    assert!(matches!(p.page(headers(2), seen(2, 0)), Step::Count(_)));
    p.count(Some(1), 0);
    assert_eq!(p.count(Some(3), 1), Step::Done { until: 1_400, keep_from: 900 });
}

/// On an unconfirmed clock (windows may be running ahead of emnify's real now) the anchor never moves:
/// its new start would lie past ground not yet read (long-run seed 107342).
#[test]
fn the_anchor_stays_while_the_clock_is_unconfirmed() {
    let mut p = plan();
    p.start(1_000, 0, None);
    p.page(headers(3), seen(3, 3));
    p.set_clock_confirmed(false);
    p.start(1_900, 0, Some(1_000));
    assert_eq!(p.page(headers(3), seen(3, 0)), Step::Done { until: 1_900, keep_from: 0 });
    p.set_clock_confirmed(true);
    p.start(1_910, 0, Some(1_900));
    assert!(matches!(p.page(headers(3), seen(3, 0)), Step::Count(q) if q.from == 1_800));
}
