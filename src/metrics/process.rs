//! The process's own `process_*` metrics, read from `/proc/self` by scrapes, at most once a second.
//!
//! Reading them costs more than the rest of a scrape: `process_open_fds` lists `/proc/self/fd`, one
//! entry per open connection. 200 scrapers in a loop spent 17% of the exporter's CPU there and kept the
//! async workers' queues long enough to hold a probe for 60 ms; a second is far below any scrape
//! interval, so no scrape sees a value older than Prometheus could tell apart.
//!
//! The prometheus crate's collector reports `process_cpu_seconds_total` in whole seconds (it divides
//! clock ticks by ticks per second in integers), so an exporter that used 0.59 s shows 0 and every CPU
//! panel reads 0. This one keeps the fraction; the names, types and help follow the Prometheus client
//! conventions (and the crate's collector), so dashboards and alerts need no change.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts};

/// The `process_*` metrics of this process.
pub(super) struct ProcessMetrics {
    cpu: Counter,
    open_fds: Gauge,
    max_fds: Gauge,
    virtual_memory: Gauge,
    resident_memory: Gauge,
    start_time: Gauge,
    threads: Gauge,
    descs: Vec<Desc>,
    /// When `/proc/self` was last read; held by the scrape reading it (the others use the values as
    /// they are, rather than wait or read it too).
    refreshed: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long values read from `/proc/self` are used before scrapes read them again.
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What `/proc/self/stat` says, in the units the metrics use.
#[derive(Debug, Clone, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    threads: f64,
    /// Since boot, seconds.
    start_after_boot_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
}

impl ProcessMetrics {
    pub(super) fn new() -> Self {
        let gauge = |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help)).expect("a valid metric");
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))
        .expect("a valid metric");
        let metrics = ProcessMetrics {
            cpu,
            open_fds: gauge("process_open_fds", "Number of open file descriptors."),
            max_fds: gauge("process_max_fds", "Maximum number of open file descriptors."),
            virtual_memory: gauge("process_virtual_memory_bytes", "Virtual memory size in bytes."),
            resident_memory: gauge("process_resident_memory_bytes", "Resident memory size in bytes."),
            start_time: gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
            threads: gauge("process_threads", "Number of OS threads in the process."),
            descs: Vec::new(),
            refreshed: std::sync::Mutex::new(None),
        };
        let descs = metrics.parts().iter().flat_map(|c| c.desc().into_iter().cloned()).collect();
        ProcessMetrics { descs, ..metrics }
    }

    fn parts(&self) -> [&dyn Collector; 7] {
        [
            &self.cpu,
            &self.open_fds,
            &self.max_fds,
            &self.virtual_memory,
            &self.resident_memory,
            &self.start_time,
            &self.threads,
        ]
    }

    /// Reads `/proc/self` unless it was read within [`REFRESH_EVERY`] before `now` or is being read now.
    fn refresh_if_due(&self, now: std::time::Instant) {
        let Ok(mut refreshed) = self.refreshed.try_lock() else { return };
        if refreshed.is_some_and(|at| now.duration_since(at) < REFRESH_EVERY) {
            return;
        }
        *refreshed = Some(now);
        self.refresh();
    }

    /// Reads `/proc/self`; a file that cannot be read leaves its metrics as they were.
    fn refresh(&self) {
        let (ticks, page) = (sysconf(libc::_SC_CLK_TCK), sysconf(libc::_SC_PAGESIZE));
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_stat(&s, ticks, page)) {
            // A counter only goes up: add what was used since the last scrape.
            let used = stat.cpu_seconds - self.cpu.get();
            if used > 0.0 {
                self.cpu.inc_by(used);
            }
            self.threads.set(stat.threads);
            self.virtual_memory.set(stat.virtual_bytes);
            self.resident_memory.set(stat.resident_bytes);
            if let Some(boot) = std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(boot_time) {
                self.start_time.set(boot + stat.start_after_boot_seconds);
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of them.
            self.open_fds.set(fds.count().saturating_sub(1) as f64);
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits").ok().as_deref().and_then(max_open_files) {
            self.max_fds.set(max);
        }
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh_if_due(std::time::Instant::now());
        self.parts().iter().flat_map(|c| c.collect()).collect()
    }
}

fn sysconf(name: libc::c_int) -> f64 {
    // SAFETY: sysconf only reads a system setting.
    let value = unsafe { libc::sysconf(name) };
    if value > 0 {
        value as f64
    } else {
        1.0
    }
}

/// `/proc/<pid>/stat`: the command name is in parentheses and may hold spaces or parentheses itself,
/// so fields are counted from the last `)`. Field numbers as in proc(5).
fn parse_stat(text: &str, ticks_per_second: f64, page_bytes: f64) -> Option<Stat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) / ticks_per_second,
        threads: field(20)?,
        start_after_boot_seconds: field(22)? / ticks_per_second,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_bytes,
    })
}

/// `btime` of `/proc/stat`: when the system booted, Unix seconds.
fn boot_time(text: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft limit of "Max open files" in `/proc/<pid>/limits`.
fn max_open_files(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_keep_their_fraction() {
        // 47 user + 12 system ticks at 100 a second: 0.59 s, which whole seconds would show as 0.
        let stat = "4242 (emnify exp) (x)) S 1 4242 4242 0 -1 4194560 1 0 0 0 47 12 0 0 20 0 7 0 1234 \
                    45678592 1500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let parsed = parse_stat(stat, 100.0, 4096.0).unwrap();
        assert_eq!(
            parsed,
            Stat {
                cpu_seconds: 0.59,
                threads: 7.0,
                start_after_boot_seconds: 12.34,
                virtual_bytes: 45_678_592.0,
                resident_bytes: 1500.0 * 4096.0,
            }
        );
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1764547200\nprocesses 9\n"), Some(1_764_547_200.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1_048_576.0));
        assert_eq!(parse_stat("garbage", 100.0, 4096.0), None);
    }

    #[test]
    fn this_process_is_measured() {
        let metrics = ProcessMetrics::new();
        // Burn some CPU so the counter is positive, then read.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let families = metrics.collect();
        let value = |name: &str| {
            let family = families.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("{name}"));
            let metric = &family.get_metric()[0];
            if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
                metric.get_counter().get_value()
            } else {
                metric.get_gauge().get_value()
            }
        };
        assert!(value("process_cpu_seconds_total") > 0.0);
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0 && value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_start_time_seconds") > 1.6e9);
        assert!(value("process_threads") >= 1.0);
    }

    /// `/proc/self` is read again only a second after it was last read: 200 scrapers in a loop listed
    /// `/proc/self/fd` 4,000 times a second.
    #[test]
    fn proc_is_read_at_most_once_a_second() {
        let metrics = ProcessMetrics::new();
        let t0 = std::time::Instant::now();
        metrics.refresh_if_due(t0);
        let read_at = || *metrics.refreshed.lock().unwrap();
        let before = metrics.open_fds.get();
        let files: Vec<_> = (0..5).map(|_| std::fs::File::open("/proc/self/stat").unwrap()).collect();
        metrics.refresh_if_due(t0 + std::time::Duration::from_millis(900));
        assert_eq!((read_at(), metrics.open_fds.get()), (Some(t0), before), "not read again within a second");
        metrics.refresh_if_due(t0 + REFRESH_EVERY);
        assert_eq!(read_at(), Some(t0 + REFRESH_EVERY), "read again after a second");
        drop(files);
    }
}
