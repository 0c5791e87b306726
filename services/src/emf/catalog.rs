//! The metrics this service publishes through CloudWatch Embedded Metric
//! Format: their names, units and dimensions, stated once. The code emits
//! exactly these, and the Terraform dashboard and alarms in
//! `IaC/observability.tf` are checked against them by a test that reads both.

/// CloudWatch namespace when `METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "scdemo";

/// Which service emitted the figure (`service-a`).
pub const SERVICE: &str = "Service";
/// A REST path (`/service-a/status`) or an rpc
/// (`scdemo.status.v1.StatusService/GetStatus`); anything else is `other`.
pub const ROUTE: &str = "Route";
/// The answer's class: `2xx`, `4xx` or `5xx` (gRPC codes by their HTTP
/// equivalent: OK is 2xx, INVALID_ARGUMENT 4xx, UNAVAILABLE 5xx, a call the
/// client abandoned 4xx).
pub const CODE_CLASS: &str = "CodeClass";

/// One metric: its name, its CloudWatch unit, and the dimension sets it is
/// published under (each set is one CloudWatch metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub dimension_sets: &'static [&'static [&'static str]],
}

/// Per service, and per route and code class.
const REQUEST_DIMENSIONS: &[&[&str]] = &[&[SERVICE], &[SERVICE, ROUTE, CODE_CLASS]];
/// Per service.
const SERVICE_DIMENSIONS: &[&[&str]] = &[&[SERVICE]];

/// Requests answered (or abandoned), by route and class.
pub const REQUESTS: MetricSpec = MetricSpec {
    name: "Requests",
    unit: "Count",
    dimension_sets: REQUEST_DIMENSIONS,
};
/// Requests answered with a server-side failure (5xx class).
pub const ERRORS: MetricSpec = MetricSpec {
    name: "Errors",
    unit: "Count",
    dimension_sets: REQUEST_DIMENSIONS,
};
/// Time from the request to the end of its answer (a stream's whole life).
pub const LATENCY: MetricSpec = MetricSpec {
    name: "Latency",
    unit: "Milliseconds",
    dimension_sets: REQUEST_DIMENSIONS,
};
/// Calls to the peer service.
pub const PEER_CALLS: MetricSpec = MetricSpec {
    name: "PeerCalls",
    unit: "Count",
    dimension_sets: SERVICE_DIMENSIONS,
};
/// Peer calls that failed (UNAVAILABLE or DEADLINE_EXCEEDED).
pub const PEER_ERRORS: MetricSpec = MetricSpec {
    name: "PeerErrors",
    unit: "Count",
    dimension_sets: SERVICE_DIMENSIONS,
};
/// Round trip of a peer call.
pub const PEER_LATENCY: MetricSpec = MetricSpec {
    name: "PeerLatency",
    unit: "Milliseconds",
    dimension_sets: SERVICE_DIMENSIONS,
};
/// WatchStatus streams open when the line was written.
pub const WATCH_STREAMS: MetricSpec = MetricSpec {
    name: "WatchStreams",
    unit: "Count",
    dimension_sets: SERVICE_DIMENSIONS,
};
/// CPU used by the process over the last sample, in percent of the CPU it
/// may use: its cgroup's quota (on ECS the task's CPU), else all the host's
/// cores. What ECS's CPUUtilization means, for the app process alone.
pub const PROCESS_CPU: MetricSpec = MetricSpec {
    name: "ProcessCpu",
    unit: "Percent",
    dimension_sets: SERVICE_DIMENSIONS,
};
/// Resident memory of the process.
pub const PROCESS_MEMORY: MetricSpec = MetricSpec {
    name: "ProcessMemory",
    unit: "Bytes",
    dimension_sets: SERVICE_DIMENSIONS,
};

/// Idle connections closed because open connections neared
/// `MAX_CONNECTIONS` (pressure reclaim), since the last line.
pub const CONNECTIONS_RECLAIMED: MetricSpec = MetricSpec {
    name: "ConnectionsReclaimed",
    unit: "Count",
    dimension_sets: SERVICE_DIMENSIONS,
};

/// Trace spans dropped (export queue full, collector slow or down) since
/// the last line; written only while trace export is on.
pub const TRACE_SPANS_DROPPED: MetricSpec = MetricSpec {
    name: "TraceSpansDropped",
    unit: "Count",
    dimension_sets: SERVICE_DIMENSIONS,
};

/// Every metric, for the dashboard test and the README.
pub const ALL: &[MetricSpec] = &[
    REQUESTS,
    ERRORS,
    LATENCY,
    PEER_CALLS,
    PEER_ERRORS,
    PEER_LATENCY,
    WATCH_STREAMS,
    PROCESS_CPU,
    PROCESS_MEMORY,
    CONNECTIONS_RECLAIMED,
    TRACE_SPANS_DROPPED,
];

/// The metrics of a per-route line, and of the per-service line.
pub(crate) const ROUTE_LINE: &[MetricSpec] = &[REQUESTS, ERRORS, LATENCY];
pub(crate) const SERVICE_LINE: &[MetricSpec] = &[
    PEER_CALLS,
    PEER_ERRORS,
    PEER_LATENCY,
    WATCH_STREAMS,
    PROCESS_CPU,
    PROCESS_MEMORY,
    CONNECTIONS_RECLAIMED,
    TRACE_SPANS_DROPPED,
];
