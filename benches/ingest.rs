//! Benchmarks of the hot paths: decoding, de-duplicating and counting event pages (against a pure
//! JSON scan of the same bytes, the physical limit), `/metrics` encoding, and the dedup memory.
//!
//! `cargo bench --bench ingest`. After divan's tables it prints the ratios in one run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use emnify_exporter::dedup::RecentIds;
use emnify_exporter::emnify::decode_event_list;
use emnify_exporter::metrics::{Exposition, Metrics, SeriesLimits};
use emnify_exporter::simulator::{Simulator, SimulatorConfig};
use emnify_exporter::tally::{Origin, Tally, TallySettings};

/// The system allocator, keeping count of the bytes in use (for the dedup memory figure).
struct CountingAllocator;

static BYTES_IN_USE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES_IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        BYTES_IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES_IN_USE.fetch_add(new_size, Ordering::Relaxed);
        BYTES_IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// One realistic page: 1,000 events over the whole catalogue, quirks included.
fn page() -> String {
    let sim = Simulator::new(SimulatorConfig { seed: 7, ..SimulatorConfig::demo() });
    sim.generate(1000);
    sim.event_json_batches(1000).remove(0)
}

/// A tally counting everything, that never checkpoints by itself (publishing is measured apart).
fn fresh_tally(metrics: &Arc<Metrics>) -> Tally {
    Tally::new(metrics.clone(), counting(1_000_000))
}

fn counting(max_remembered_ids: usize) -> TallySettings {
    TallySettings {
        max_remembered_ids,
        publish_every: Duration::MAX,
        save_every: Duration::MAX,
        ..TallySettings::default()
    }
}

/// Decode + dedup + count of one page of new events.
#[divan::bench]
fn decode_dedup_count(bencher: Bencher) {
    let page = page();
    let metrics = Arc::new(Metrics::new());
    bencher
        .counter(BytesCount::of_str(&page))
        .counter(ItemsCount::new(1000usize))
        .with_inputs(|| fresh_tally(&metrics))
        .bench_local_refs(|tally| {
            let events = decode_event_list(page.as_bytes()).expect("valid page");
            tally
                .ingest(events, Origin::Poll { from_millis: 0, until_millis: i64::MAX / 2 }, std::time::Instant::now())
                .counts
        });
}

/// Decoding alone (no dedup, no counting), to see where the time goes.
#[divan::bench]
fn decode_only(bencher: Bencher) {
    let page = page();
    bencher
        .counter(BytesCount::of_str(&page))
        .bench_local(|| decode_event_list(page.as_bytes()).expect("valid page").len());
}

/// The physical limit: a serde_json scan of the same bytes that builds nothing.
#[divan::bench]
fn json_scan_limit(bencher: Bencher) {
    let page = page();
    bencher
        .counter(BytesCount::of_str(&page))
        .counter(ItemsCount::new(1000usize))
        .bench_local(|| serde_json::from_slice::<serde::de::IgnoredAny>(page.as_bytes()).expect("valid"));
}

/// A registry with `series` event series (many organisations), as `/metrics` encodes it.
fn metrics_with_series(series: usize) -> Metrics {
    metrics_with(series, false)
}

/// [`metrics_with_series`], its events with a time and a device when `exemplars` (so each series has one).
fn metrics_with(series: usize, exemplars: bool) -> Metrics {
    // No organisation limit here: this measures encoding, at however many series.
    let metrics = Metrics::with_limits(SeriesLimits { max_organisations: usize::MAX, ..SeriesLimits::default() });
    let body = |org: usize, kind: usize| {
        let device = if exemplars {
            format!(r#","timestamp":"2026-12-01T10:00:00.123Z","endpoint":{{"id":{}}}"#, 15_000_000 + org * 10 + kind)
        } else {
            String::new()
        };
        format!(
            r#"[{{"id":{},"event_type":{{"id":{}}},"event_source":{{"id":0}},"event_severity":{{"id":0}},"organisation":{{"id":{org},"name":"Org {org}"}}{device}}}]"#,
            org * 100 + kind + 1_000_000_000,
            kind % 40 + 1
        )
    };
    let mut tally = Tally::new(Arc::new(Metrics::new()), counting(10_000_000));
    let _ = &mut tally;
    // Each organisation adds 10 event series, its zero-initialised Generic series (5) and its info series.
    let organisations = series / 16;
    for org in 0..organisations.max(1) {
        for kind in 0..10 {
            let text = body(org, kind);
            for event in decode_event_list(text.as_bytes()).expect("valid").into_iter().flatten() {
                metrics.events.record(&event);
            }
        }
    }
    metrics
}

/// A checkpoint's encoding of every series (what a scrape then serves as it is).
#[divan::bench(args = [1_000, 10_000, 100_000])]
fn metrics_publish(bencher: Bencher, series: usize) {
    let metrics = metrics_with_series(series);
    bencher.bench_local(|| metrics.publish());
}

/// What one scrape costs: the published text plus fresh `process_*` metrics.
#[divan::bench(args = [1_000, 10_000, 100_000])]
fn metrics_scrape(bencher: Bencher, series: usize) {
    let metrics = metrics_with_series(series);
    metrics.publish();
    bencher.bench_local(|| metrics.encode());
}

/// Dedup lookups of known ids in a memory of 1M ids.
#[divan::bench]
fn dedup_lookup_1m(bencher: Bencher) {
    let mut ids = RecentIds::new(0, 2_000_000);
    for id in 0..1_000_000u64 {
        ids.insert(id.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1);
    }
    let mut n = 0u64;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        n = n.wrapping_add(1);
        ids.contains((n % 1_000_000).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    });
}

fn main() {
    divan::main();
    // A filtered run (`cargo bench --bench ingest -- decode_only`, e.g. under a profiler) skips the ratios.
    if std::env::args().skip(1).all(|arg| arg.starts_with('-')) {
        ratios();
    }
}

/// Times `f` over `rounds` rounds and returns the best round (least noise on a busy machine).
fn best<T>(rounds: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            divan::black_box(f());
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// The ratios the README reports, measured back to back in this run.
fn ratios() {
    let page = page();
    let bytes = page.len() as f64;
    let metrics = Arc::new(Metrics::new());
    let limit = best(300, || serde_json::from_slice::<serde::de::IgnoredAny>(page.as_bytes()).map(|_| ()));
    let ours = best(300, || {
        let mut tally = fresh_tally(&metrics);
        let events = decode_event_list(page.as_bytes()).expect("valid");
        tally
            .ingest(events, Origin::Poll { from_millis: 0, until_millis: i64::MAX / 2 }, std::time::Instant::now())
            .counts
    });
    let mbps = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    println!("\npage: 1,000 events, {} bytes", page.len());
    println!("pure JSON scan (limit):   {:>8.1} MB/s", mbps(limit));
    println!("decode + dedup + count:   {:>8.1} MB/s, {:.0} events/s", mbps(ours), 1000.0 / ours.as_secs_f64());
    println!("ratio exporter/limit:     {:>8.2}", mbps(ours) / mbps(limit));

    let before = BYTES_IN_USE.load(Ordering::Relaxed);
    let mut ids = RecentIds::new(0, 2_000_000);
    for id in 0..1_000_000u64 {
        ids.insert(id.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1);
    }
    let held = BYTES_IN_USE.load(Ordering::Relaxed).saturating_sub(before) as f64;
    println!("dedup memory for 1M ids:  {:>8.1} MiB ({:.0} bytes/id)", held / 1048576.0, held / 1e6);
    drop(ids);
    for series in [1_000, 10_000, 100_000] {
        let m = metrics_with_series(series);
        let publish = best(5, || m.publish());
        let scrape = best(20, || m.encode().len());
        println!(
            "/metrics with {series:>6} series: publish {:>8.2} ms, scrape {:>8.3} ms",
            publish.as_secs_f64() * 1e3,
            scrape.as_secs_f64() * 1e3
        );
        for (format, exemplars) in
            [(Exposition::Prometheus, false), (Exposition::OpenMetrics, false), (Exposition::OpenMetrics, true)]
        {
            let m = if exemplars { metrics_with(series, true) } else { metrics_with(series, false) };
            let publish = best(5, || m.publish());
            let text = m.encode_as(format);
            let mut compressed = 0;
            let gzip = best(10, || {
                use std::io::Write;
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&text).expect("in memory");
                compressed = encoder.finish().expect("in memory").len();
            });
            println!(
                "    {format:?}{}: {:>9} bytes (publish {:>6.2} ms), gzip {:>8} bytes in {:>7.2} ms",
                if exemplars { " with exemplars" } else { "" },
                text.len(),
                publish.as_secs_f64() * 1e3,
                compressed,
                gzip.as_secs_f64() * 1e3
            );
        }
    }
}
