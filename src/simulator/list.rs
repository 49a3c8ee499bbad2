//! The event list (`GET /api/v1/event`, `/api/v1/endpoint/{id}/event`): the `q` filter, `sort`,
//! paging and its headers, and the faults and test hooks that act while a list is walked.

use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::StatusCode;

use super::reply::error;
use super::state::{ListCache, PagingInjection, StoredEvent};
use super::Simulator;
use crate::http::{json, HttpResponse};
use crate::timefmt::parse_timestamp_millis;

/// The parsed `q` filter.
#[derive(Default)]
struct Filter {
    from: Option<i64>,
    until: Option<i64>,
    types: Option<Vec<u32>>,
    source: Option<u32>,
    severity: Option<u32>,
    alert: Option<bool>,
}

impl Filter {
    fn parse(q: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for part in q.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value) = part.split_once(':').ok_or_else(|| format!("invalid filter '{part}'"))?;
            let number = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("invalid value for {field}"));
            match field.trim() {
                "from" => filter.from = Some(parse_date(value)?),
                "until" => filter.until = Some(parse_date(value)?),
                "type" => filter.types = Some(value.split('|').map(number).collect::<Result<_, _>>()?),
                "source" => filter.source = Some(number(value)?),
                "severity" => filter.severity = Some(number(value)?),
                "alert" => filter.alert = Some(value.trim() == "true"),
                other => return Err(format!("unsupported filter '{other}'")),
            }
        }
        if filter.from.is_some() != filter.until.is_some() {
            return Err("from and until must be given together".into());
        }
        Ok(filter)
    }

    fn matches(&self, e: &StoredEvent, endpoint: Option<u64>) -> bool {
        // `until` names a second; the whole second is inside the window.
        self.from.is_none_or(|f| e.timestamp_millis >= f)
            && self.until.is_none_or(|u| e.timestamp_millis < u + 1000)
            && self.types.as_ref().is_none_or(|t| t.contains(&e.event_type))
            && self.source.is_none_or(|s| s == e.source)
            && self.severity.is_none_or(|s| s == e.severity)
            && self.alert.is_none_or(|a| a == e.alert)
            && endpoint.is_none_or(|id| e.endpoint == Some(id))
    }
}

fn parse_date(value: &str) -> Result<i64, String> {
    parse_timestamp_millis(value).ok_or_else(|| format!("invalid date '{value}', expected YYYY-MM-DDTHH:mm:ssZ"))
}

/// A `sort` field: descending or not, and the value compared.
type SortKey = (bool, fn(&StoredEvent) -> i128);

fn sort_key(field: &str) -> Result<SortKey, String> {
    let (descending, name) = match field.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, field.strip_prefix('+').unwrap_or(field)),
    };
    let key: fn(&StoredEvent) -> i128 = match name {
        "id" => |e| i128::from(e.id),
        "timestamp" => |e| i128::from(e.timestamp_millis),
        "type" => |e| i128::from(e.event_type),
        "source" => |e| i128::from(e.source),
        "severity" => |e| i128::from(e.severity),
        "alert" => |e| i128::from(e.alert),
        other => return Err(format!("unsupported sort field '{other}'")),
    };
    Ok((descending, key))
}

pub(super) fn list_events(sim: &Simulator, query: &str, endpoint: Option<u64>) -> HttpResponse {
    let mut page: i64 = 1;
    let mut per_page: i64 = 0;
    let mut sort = String::new();
    let mut q = String::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "page" => match value.trim().parse() {
                Ok(p) => page = p,
                Err(_) => return error(StatusCode::BAD_REQUEST, "invalid page"),
            },
            "per_page" => match value.trim().parse() {
                Ok(p) => per_page = p,
                Err(_) => return error(StatusCode::BAD_REQUEST, "invalid per_page"),
            },
            "sort" => sort = value.into_owned(),
            "q" => q = value.into_owned(),
            _ => {}
        }
    }
    let filter = match Filter::parse(&q) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::UNPROCESSABLE_ENTITY, &message),
    };
    // Unsorted lists come newest first, as the Portal shows them. An API that ignores `sort` answers in
    // its own order whatever is asked: here highest ids first.
    let sort_spec = if sim.config.ignore_sort {
        "-id".to_string()
    } else if sort.is_empty() {
        "-timestamp".to_string()
    } else {
        sort.clone()
    };
    let mut keys = Vec::new();
    for field in sort_spec.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match sort_key(field) {
            Ok(k) => keys.push(k),
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        }
    }
    let per_page = if per_page < 1 {
        sim.config.default_per_page
    } else {
        per_page.min(i64::from(sim.config.max_per_page)) as u32
    };

    let mut state = sim.lock();
    state.stats.event_pages += 1;
    // Walking a large list page by page asks the same question again and again: keep the last answer
    // while no event was added, so serving a page costs the page, not a sort of everything.
    let question = format!("{q}|{sort_spec}|{endpoint:?}");
    let cached = state
        .list_cache
        .as_ref()
        .filter(|c| c.question == question && c.events == state.events.len())
        .map(|c| c.selected.clone());
    let selected = match cached {
        Some(selected) => selected,
        None => {
            let events = &state.events;
            let mut selected: Vec<usize> =
                (0..events.len()).filter(|&i| filter.matches(&events[i], endpoint)).collect();
            if let [(descending, key)] = keys.as_slice() {
                // One field (what pollers ask for): sort by a precomputed key, not by chasing every
                // event in every comparison (a 100,000-event window sorts several times faster).
                let sign = if *descending { -1 } else { 1 };
                selected.sort_by_cached_key(|&i| (sign * key(&events[i]), events[i].id));
            } else {
                selected.sort_by(|&a, &b| {
                    let (a, b) = (&events[a], &events[b]);
                    for (descending, key) in &keys {
                        let ord = key(a).cmp(&key(b));
                        let ord = if *descending { ord.reverse() } else { ord };
                        if ord.is_ne() {
                            return ord;
                        }
                    }
                    a.id.cmp(&b.id)
                });
            }
            let selected = Arc::new(selected);
            let events = state.events.len();
            state.list_cache = Some(ListCache { question, events, selected: selected.clone() });
            selected
        }
    };
    let total = selected.len() as u64;
    let total_pages = total.div_ceil(u64::from(per_page)).max(1);
    // Past the end, emnify serves the last page again; before the start, the first.
    let current = (page.max(1) as u64).min(total_pages);
    let start = ((current - 1) * u64::from(per_page)) as usize;
    // Fault: the last event of the page before shows up again at the top of this one.
    let previous = start.checked_sub(1).and_then(|i| selected.get(i)).copied();
    let repeated = previous.filter(|_| state.faults.duplicate());
    // The page is copied straight from the stored JSON, under the lock: no per-event reference counting.
    let events = &state.events;
    let items: Vec<&str> = repeated
        .into_iter()
        .chain(selected.iter().skip(start).take(per_page as usize).copied())
        .map(|i| &*events[i].json)
        .collect();
    let mut body = String::with_capacity(items.iter().map(|s| s.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(item);
    }
    body.push(']');
    let omit_paging = sim.config.omit_paging_headers || state.faults.missing_paging();
    let (reported_total, reported_pages) = match state.faults.wrong_paging() {
        Some(delta) => {
            let pages = (total_pages as i64 + delta).max(1) as u64;
            (pages * u64::from(per_page), pages)
        }
        None if state.total_count_offset != 0 => {
            let told = (total as i64).saturating_add(state.total_count_offset).max(0) as u64;
            (told, told.div_ceil(u64::from(per_page)).max(1))
        }
        None => (total, total_pages),
    };

    let mut late = state.injections.front().filter(|i| u64::from(i.page) == current).cloned();
    if late.is_some() {
        state.injections.pop_front();
    } else if let Some((count, age)) = state.faults.late() {
        late = Some(PagingInjection { page: current as u32, count, age, expire: 0 });
    }
    if let Some(injection) = late {
        let time = sim.now_millis() - crate::timefmt::duration_millis(injection.age);
        for _ in 0..injection.count {
            state.produce(time, None);
        }
        state.expire_lowest_ids(injection.expire);
    }
    drop(state);

    let mut response = json(StatusCode::OK, body);
    let base = match endpoint {
        Some(id) => format!("/api/v1/endpoint/{id}/event"),
        None => "/api/v1/event".to_string(),
    };
    let link = |p: u64, rel: &str| {
        let params = form_urlencoded::Serializer::new(String::new())
            .append_pair("page", &p.to_string())
            .append_pair("per_page", &per_page.to_string())
            .append_pair("sort", &sort)
            .append_pair("q", &q)
            .finish();
        format!("<{base}?{params}>;rel=\"{rel}\"")
    };
    let mut links = vec![link(1, "first")];
    if current > 1 {
        links.push(link(current - 1, "prev"));
    }
    if current < total_pages {
        links.push(link(current + 1, "next"));
    }
    links.push(link(total_pages, "last"));
    if omit_paging {
        return response;
    }
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("link", links.join(", "));
    set("x-count-per-page", per_page.to_string());
    set("x-current-page", current.to_string());
    set("x-total-count", reported_total.to_string());
    set("x-total-pages", reported_pages.to_string());
    if !q.is_empty() {
        set("x-filter", q.clone());
    }
    if !sort.is_empty() && !sim.config.ignore_sort {
        set("x-sort", sort.clone());
    }
    response
}
