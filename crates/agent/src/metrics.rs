//! The agent's Prometheus endpoint: `GET /metrics` on an address the administrator chooses,
//! rendered at each scrape from the counters the responders and workers keep anyway
//! ([`Stats`]). It has a thread of its own, holds no lock a worker takes, and its own file
//! reads (the spool backlog) are the agent's, which the responders allow at once.

use crate::state::{Latency, Shared, Stats};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Bytes of the event spool not yet delivered to the server, when the agent has one.
pub type Backlog = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// Where and what the endpoint serves.
#[derive(Clone)]
pub struct MetricsConfig {
    /// The address to listen on (plain HTTP: keep it on loopback or a management network).
    pub listen: SocketAddr,
    /// The spool's undelivered bytes; `None`: no server, no backlog reported.
    pub backlog: Option<Backlog>,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig").field("listen", &self.listen).finish_non_exhaustive()
    }
}

/// The content type of what [`render`] writes: OpenMetrics text, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The text Prometheus scrapes: the counters of `stats`, the identity cache's size and the
/// spool backlog.
pub fn render(stats: &Stats, cache_entries: usize, backlog: Option<u64>) -> String {
    let mut r = Registry::with_prefix("portcullis_agent");
    let n = |a: &std::sync::atomic::AtomicU64| ConstCounter::new(a.load(Ordering::Relaxed));
    r.register("decisions", "Permission events answered by a worker, by access and verdict", Decisions::of(stats));
    r.register_with_unit(
        "answer",
        "Time from reading a permission event to answering it (worker answers)",
        Unit::Seconds,
        Histogram::of(&stats.answer_latency),
    );
    r.register("events", "Permission events read from the kernel", n(&stats.events));
    r.register("own_events", "Permission events of the agent itself, allowed at once", n(&stats.own));
    r.register("overloads", "Events answered with the overload verdict (full queue or deadline)", n(&stats.overload));
    r.register("ignore_marks", "Kernel ignore marks added for permitted files", n(&stats.ignore_marks));
    r.register("cache_hits", "File facts found in the identity cache", n(&stats.cache_hits));
    r.register("cache_misses", "Files hashed and inspected (not in the identity cache)", n(&stats.hashed));
    r.register("cache_entries", "File versions in the identity cache", ConstGauge::new(cache_entries as i64));
    r.register("spool_dropped", "Events the spool could not keep (filesystem full or failing)", {
        ConstCounter::new(stats.spool_dropped.load(Ordering::Relaxed))
    });
    if let Some(b) = backlog {
        r.register_with_unit(
            "spool_backlog",
            "Spooled events not yet delivered to the server",
            Unit::Bytes,
            ConstGauge::new(i64::try_from(b).unwrap_or(i64::MAX)),
        );
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &r).expect("writing to a String");
    out
}

/// [`Stats::decisions`] at the moment of a scrape.
#[derive(Debug)]
struct Decisions(Vec<(&'static str, &'static str, u64)>);

impl Decisions {
    fn of(stats: &Stats) -> Decisions {
        Decisions(stats.decisions.counts().into_iter().map(|(a, v, n)| (a.name(), v.name(), n)).collect())
    }
}

impl EncodeMetric for Decisions {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (access, verdict, n) in &self.0 {
            let labels = [("access", *access), ("verdict", *verdict)];
            encoder.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A [`Latency`] at the moment of a scrape.
#[derive(Debug)]
struct Histogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl Histogram {
    fn of(latency: &Latency) -> Histogram {
        let (sum, count, buckets) = latency.snapshot();
        Histogram { sum, count, buckets }
    }
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Bind the endpoint (before any mark: a start that cannot serve what it was asked to fails
/// while nothing is enforced yet).
pub(crate) fn bind(config: &MetricsConfig) -> std::io::Result<tiny_http::Server> {
    tiny_http::Server::http(config.listen).map_err(std::io::Error::other)
}

/// Answer scrapes until the agent stops.
pub(crate) fn serve(shared: Arc<Shared>, server: tiny_http::Server) {
    let backlog = shared.config.metrics.as_ref().and_then(|m| m.backlog.clone());
    while !shared.stop.load(Ordering::Acquire) {
        let request = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("metrics endpoint: {e}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let response = if request.url() != "/metrics" {
            tiny_http::Response::from_string("not found; Prometheus metrics are at /metrics\n").with_status_code(404)
        } else if *request.method() != tiny_http::Method::Get {
            tiny_http::Response::from_string("only GET\n").with_status_code(405)
        } else {
            let text = render(&shared.stats, shared.cache.len(), backlog.as_ref().and_then(|b| b()));
            let header =
                tiny_http::Header::from_bytes(&b"Content-Type"[..], CONTENT_TYPE.as_bytes()).expect("a valid header");
            tiny_http::Response::from_string(text).with_header(header)
        };
        let _ = request.respond(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_events::Access;

    #[test]
    fn renders_every_counter_with_its_labels_and_a_cumulative_histogram() {
        let stats = Stats::default();
        stats.decisions.count(Some(Access::Exec), true);
        stats.decisions.count(Some(Access::Exec), false);
        stats.decisions.count(Some(Access::Exec), false);
        // Not classified yet (or a value this agent does not know): counted as an open.
        stats.decisions.count(None, false);
        stats.decisions.count(Some(Access::Unknown), false);
        stats.answer_latency.observe(Duration::from_micros(40));
        stats.answer_latency.observe(Duration::from_millis(3));
        stats.answer_latency.observe(Duration::from_secs(60));
        stats.hashed.store(7, Ordering::Relaxed);
        stats.spool_dropped.store(3, Ordering::Relaxed);
        let text = render(&stats, 12, Some(4096));
        for line in [
            "portcullis_agent_decisions_total{access=\"exec\",verdict=\"deny\"} 1",
            "portcullis_agent_decisions_total{access=\"exec\",verdict=\"allow\"} 2",
            "portcullis_agent_decisions_total{access=\"open\",verdict=\"allow\"} 2",
            "portcullis_agent_decisions_total{access=\"load\",verdict=\"allow\"} 0",
            "portcullis_agent_answer_seconds_bucket{le=\"0.00005\"} 1",
            "portcullis_agent_answer_seconds_bucket{le=\"0.005\"} 2",
            "portcullis_agent_answer_seconds_bucket{le=\"5.0\"} 2",
            "portcullis_agent_answer_seconds_bucket{le=\"+Inf\"} 3",
            "portcullis_agent_answer_seconds_count 3",
            "portcullis_agent_cache_misses_total 7",
            "portcullis_agent_cache_entries 12",
            "portcullis_agent_spool_dropped_total 3",
            "portcullis_agent_spool_backlog_bytes 4096",
            "# TYPE portcullis_agent_answer_seconds histogram",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // The sum is 60.003040 s.
        let sum = text.lines().find_map(|l| l.strip_prefix("portcullis_agent_answer_seconds_sum ")).unwrap();
        assert!((sum.parse::<f64>().unwrap() - 60.00304).abs() < 1e-9, "{sum}");
        // No backlog without a server: no line at all, rather than a misleading zero.
        assert!(!render(&stats, 0, None).contains("spool_backlog"));
    }
}
