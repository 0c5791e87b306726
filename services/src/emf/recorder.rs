//! What a service counts between two EMF lines: requests by route and code
//! class (count, errors, latency histogram) and its peer calls. Requests
//! record with a few relaxed atomic additions into a table fixed at start,
//! so recording never locks or allocates; routes not known at start count
//! as `other`, which keeps the Route dimension small whatever clients send.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use serde_json::{Value, json};

use super::{
    catalog::{self, MetricSpec},
    histogram::Histogram,
};

/// The label of every route not known at start.
pub const OTHER_ROUTE: &str = "other";

/// An answer's class, the CodeClass dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeClass {
    Success,
    ClientError,
    ServerError,
}

impl CodeClass {
    const ALL: [Self; 3] = [Self::Success, Self::ClientError, Self::ServerError];

    /// The class of an HTTP status (gRPC codes come as their HTTP equivalent).
    pub(crate) fn of_http(status: u16) -> Self {
        match status {
            500.. => Self::ServerError,
            400..500 => Self::ClientError,
            _ => Self::Success,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
        }
    }
}

/// Index of a route in the recorder's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteId(usize);

#[derive(Debug, Default)]
struct RouteStats {
    requests: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

#[derive(Debug, Default)]
struct PeerStats {
    calls: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

/// Point-in-time figures written with each per-service line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gauges {
    pub watch_streams: u64,
    /// Percent of one core; written as percent of the cores the process may
    /// use ([`crate::metrics::cpu_capacity_cores`]).
    pub process_cpu_percent: f64,
    pub process_memory_bytes: u64,
    /// Trace spans dropped since start; `None` while trace export is off
    /// (then the line has no `TraceSpansDropped`).
    pub trace_spans_dropped_total: Option<u64>,
}

#[derive(Debug)]
pub struct Recorder {
    service: String,
    /// Route labels; the last is [`OTHER_ROUTE`].
    routes: Vec<String>,
    /// The known routes' indexes, sorted by (length, bytes) of their label:
    /// a request's route is a binary search, mostly comparing lengths, not a
    /// string comparison with each route in turn.
    lookup: Box<[(Box<[u8]>, RouteId)]>,
    /// `routes.len() * 3` entries: route-major, then code class.
    stats: Box<[RouteStats]>,
    peer: PeerStats,
    connections_reclaimed: AtomicU64,
    /// `trace_spans_dropped_total` at the last line, to write the difference.
    trace_spans_dropped_before: AtomicU64,
}

impl Recorder {
    pub fn new(service: &str, known_routes: impl IntoIterator<Item = String>) -> Self {
        let mut routes: Vec<String> = known_routes.into_iter().collect();
        routes.push(OTHER_ROUTE.to_owned());
        let stats = (0..routes.len() * CodeClass::ALL.len())
            .map(|_| RouteStats::default())
            .collect();
        let mut lookup: Vec<(Box<[u8]>, RouteId)> = routes
            .iter()
            .enumerate()
            .map(|(index, route)| (route.as_bytes().into(), RouteId(index)))
            .collect();
        lookup.sort_by(|(a, _), (b, _)| by_length_then_bytes(a, b));
        // A label given twice counts under its first index, as before.
        lookup.dedup_by(|(later, _), (earlier, _)| later == earlier);
        lookup.retain(|(_, id)| id.0 + 1 < routes.len());
        Self {
            service: service.to_owned(),
            routes,
            lookup: lookup.into(),
            stats,
            peer: PeerStats::default(),
            connections_reclaimed: AtomicU64::new(0),
            trace_spans_dropped_before: AtomicU64::new(0),
        }
    }

    /// The route of a REST path or rpc (`/package.Service/Method`'s part
    /// after the slash), `other` when unknown.
    pub(crate) fn route(&self, target: &str) -> RouteId {
        let target = target.as_bytes();
        self.lookup
            .binary_search_by(|(route, _)| by_length_then_bytes(route, target))
            .map_or(RouteId(self.routes.len() - 1), |found| self.lookup[found].1)
    }

    /// Whether `route` is one of the known routes, not [`OTHER_ROUTE`].
    pub(crate) fn is_known(&self, route: RouteId) -> bool {
        route.0 + 1 < self.routes.len()
    }

    fn stats(&self, route: RouteId, class: CodeClass) -> &RouteStats {
        let class_index = CodeClass::ALL.iter().position(|c| *c == class).unwrap_or(0);
        &self.stats[route.0 * CodeClass::ALL.len() + class_index]
    }

    pub(crate) fn record_request(&self, route: RouteId, class: CodeClass, latency: Duration) {
        let stats = self.stats(route, class);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        if class == CodeClass::ServerError {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        stats.latency.record(latency);
    }

    pub(crate) fn record_peer_call(&self, succeeded: bool, latency: Duration) {
        self.peer.calls.fetch_add(1, Ordering::Relaxed);
        if !succeeded {
            self.peer.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.peer.latency.record(latency);
    }

    /// A peer call refused before it was sent (peer unreachable, no call
    /// slot, no time left): a call and an error, with no round trip to time.
    pub(crate) fn record_peer_refusal(&self) {
        self.peer.calls.fetch_add(1, Ordering::Relaxed);
        self.peer.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_reclaimed_connection(&self) {
        self.connections_reclaimed.fetch_add(1, Ordering::Relaxed);
    }

    /// The EMF lines for everything counted since the last call (which it
    /// resets): one per route and class that had requests, and one for the
    /// service with its peer calls and `gauges`.
    pub fn take_lines(&self, namespace: &str, timestamp_ms: u64, gauges: Gauges) -> Vec<Value> {
        let mut lines = Vec::new();
        for (route_index, route) in self.routes.iter().enumerate() {
            for class in CodeClass::ALL {
                let stats = self.stats(RouteId(route_index), class);
                let requests = stats.requests.swap(0, Ordering::Relaxed);
                if requests == 0 {
                    continue;
                }
                let mut line = json!({});
                line[catalog::SERVICE] = json!(self.service);
                line[catalog::ROUTE] = json!(route);
                line[catalog::CODE_CLASS] = json!(class.label());
                line[catalog::REQUESTS.name] = json!(requests);
                line[catalog::ERRORS.name] = json!(stats.errors.swap(0, Ordering::Relaxed));
                line[catalog::LATENCY.name] = distribution(&stats.latency);
                lines.push(with_directive(
                    line,
                    namespace,
                    timestamp_ms,
                    catalog::ROUTE_LINE,
                ));
            }
        }
        let mut line = json!({});
        line[catalog::SERVICE] = json!(self.service);
        line[catalog::PEER_CALLS.name] = json!(self.peer.calls.swap(0, Ordering::Relaxed));
        line[catalog::PEER_ERRORS.name] = json!(self.peer.errors.swap(0, Ordering::Relaxed));
        line[catalog::PEER_LATENCY.name] = distribution(&self.peer.latency);
        line[catalog::WATCH_STREAMS.name] = json!(gauges.watch_streams);
        line[catalog::PROCESS_CPU.name] =
            json!(gauges.process_cpu_percent / crate::metrics::cpu_capacity_cores());
        line[catalog::PROCESS_MEMORY.name] = json!(gauges.process_memory_bytes);
        line[catalog::CONNECTIONS_RECLAIMED.name] =
            json!(self.connections_reclaimed.swap(0, Ordering::Relaxed));
        if let Some(total) = gauges.trace_spans_dropped_total {
            let before = self
                .trace_spans_dropped_before
                .swap(total, Ordering::Relaxed);
            line[catalog::TRACE_SPANS_DROPPED.name] = json!(total.saturating_sub(before));
        }
        lines.push(with_directive(
            line,
            namespace,
            timestamp_ms,
            catalog::SERVICE_LINE,
        ));
        lines
    }
}

/// The lookup's order: shorter first, then bytewise; most comparisons of a
/// binary search stop at the lengths.
fn by_length_then_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// `line` with its `_aws` metadata: one directive declaring those of
/// `metrics` the line has (EMF requires every declared metric to be
/// present: one with nothing to report, such as peer latency in a minute
/// without peer calls, is left out of both), with all of their dimension
/// sets.
fn with_directive(
    mut line: Value,
    namespace: &str,
    timestamp_ms: u64,
    metrics: &[MetricSpec],
) -> Value {
    let present: Vec<&MetricSpec> = metrics
        .iter()
        .filter(|metric| line.get(metric.name).is_some_and(|value| !value.is_null()))
        .collect();
    let mut dimension_sets: Vec<&[&str]> = Vec::new();
    for metric in &present {
        for set in metric.dimension_sets {
            if !dimension_sets.contains(set) {
                dimension_sets.push(set);
            }
        }
    }
    let declared: Vec<Value> = present
        .iter()
        .map(|metric| json!({ "Name": metric.name, "Unit": metric.unit }))
        .collect();
    if let Some(fields) = line.as_object_mut() {
        fields.retain(|_, value| !value.is_null());
    }
    line["_aws"] = json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": namespace,
            "Dimensions": dimension_sets,
            "Metrics": declared,
        }]
    });
    line
}

/// `{"Values": [...], "Counts": [...]}`, or null when nothing was recorded
/// (then the metric is neither written nor declared).
fn distribution(histogram: &Histogram) -> Value {
    let taken = histogram.take();
    if taken.is_empty() {
        return Value::Null;
    }
    let (values, counts): (Vec<f64>, Vec<u64>) = taken.into_iter().unzip();
    json!({ "Values": values, "Counts": counts })
}

#[cfg(test)]
mod tests;
