//! Traces: OpenTelemetry spans exported over OTLP to a collector (the ECS
//! sidecar, which forwards them to X-Ray), off unless an OTLP endpoint is
//! configured ([`config`]).
//!
//! The request path already gives each request a trace id, a span id and
//! its caller's span id ([`crate::http::TraceContext`]) and finishes one
//! access record. The SERVER span is built from that record once the
//! request has ended ([`spans`]), with the same ids the access line shows,
//! so logs and traces join; the peer call gets a CLIENT span whose id is
//! the parent it passes on. Nothing is recorded while a request runs: with
//! export off, each request pays one branch.
//!
//! Sampling is decided when the request starts, by the configured
//! (parent-based) sampler: the caller's `traceparent` sampled flag or
//! `X-Amzn-Trace-Id` `Sampled=` is the parent's decision, and the decision
//! is what the peer call passes on.
//!
//! Export starts once the service is SERVING (the ECS task metadata is
//! part of every span's resource) and stops after the last connection,
//! flushing within what is left of `SHUTDOWN_TIMEOUT` ([`pipeline`]).

mod config;
mod pipeline;
mod resource;
mod spans;

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use opentelemetry::{
    Context, KeyValue,
    trace::{SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};
use status_api::v1::EcsTask;

pub(crate) use self::spans::{Ending, PeerCall, ServerSpan};
use self::{
    config::{Off, TraceConfig},
    pipeline::Pipeline,
};
use crate::{config::PeerUrl, http::TraceContext, topology::KnownService};

/// One service's trace export: nothing when off.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spans(Option<Arc<Shared>>);

#[derive(Debug)]
struct Shared {
    service: String,
    config: TraceConfig,
    peer_attributes: Vec<KeyValue>,
    exporting: OnceLock<Arc<Exporting>>,
}

/// Export under way: where a recorded span goes.
struct Exporting {
    pipeline: Pipeline,
    sampler: Sampler,
    scope: opentelemetry::InstrumentationScope,
    peer_attributes: Vec<KeyValue>,
}

impl fmt::Debug for Exporting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporting").finish_non_exhaustive()
    }
}

/// A request's spans are recorded, and sent here when they end. Carried in
/// its [`TraceContext`] only when sampled with export on.
#[derive(Debug, Clone)]
pub(crate) struct SpanSink(Arc<Exporting>);

impl PartialEq for SpanSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SpanSink {}

impl SpanSink {
    pub(crate) fn send(&self, span: opentelemetry_sdk::trace::SpanData) {
        self.0.pipeline.send(span);
    }

    fn scope(&self) -> &opentelemetry::InstrumentationScope {
        &self.0.scope
    }

    fn peer_attributes(&self) -> &[KeyValue] {
        &self.0.peer_attributes
    }
}

impl Spans {
    /// Reads the OpenTelemetry variables of the process environment and
    /// logs whether export is on.
    pub(crate) fn from_env(service: &str, peer: &PeerUrl) -> Self {
        let (config, warnings) = TraceConfig::from_lookup(|name| std::env::var(name).ok());
        for warning in warnings {
            tracing::warn!(service, warning, "trace export setting ignored");
        }
        let config = match config {
            Ok(config) => config,
            Err(Off::NoEndpoint) => return Self(None),
            Err(Off::Disabled(by)) => {
                tracing::info!(service, by, "trace export off");
                return Self(None);
            }
        };
        Self(Some(Arc::new(Shared {
            service: service.to_owned(),
            peer_attributes: peer_attributes(service, peer),
            config,
            exporting: OnceLock::new(),
        })))
    }

    /// Starts exporting, with the ECS task (if any) in the resource. Must
    /// run on the service's runtime.
    pub(crate) fn start(&self, ecs: Option<&EcsTask>) {
        let Some(shared) = &self.0 else { return };
        let config = &shared.config;
        let resource = resource::resource(&shared.service, config.service_name.as_deref(), ecs);
        let runtime = tokio::runtime::Handle::current();
        let pipeline = match Pipeline::build(config, &resource, runtime) {
            Ok(pipeline) => pipeline,
            Err(error) => {
                tracing::error!(service = shared.service, %error, "trace export off: cannot build the OTLP exporter");
                return;
            }
        };
        let exporting = Arc::new(Exporting {
            pipeline,
            sampler: config.sampler.sampler(),
            scope: opentelemetry::InstrumentationScope::builder("status-services")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            peer_attributes: shared.peer_attributes.clone(),
        });
        if shared.exporting.set(exporting).is_ok() {
            tracing::info!(
                service = shared.service,
                endpoint = config.endpoint,
                protocol = ?config.protocol,
                sampler = ?config.sampler,
                max_queue_size = config.max_queue_size,
                "trace export on"
            );
        }
    }

    /// Decides whether the request is sampled; when it is, its context
    /// carries where its spans go. Nothing happens with export off.
    pub(crate) fn sample(&self, trace: &mut TraceContext) {
        let Some(exporting) = self.0.as_ref().and_then(|shared| shared.exporting.get()) else {
            return;
        };
        let sampled = decide(&exporting.sampler, trace);
        trace.set_sampled(sampled, sampled.then(|| SpanSink(Arc::clone(exporting))));
    }

    /// Spans dropped since start, or `None` while nothing is exported.
    pub(crate) fn dropped_total(&self) -> Option<u64> {
        let exporting = self.0.as_ref()?.exporting.get()?;
        Some(exporting.pipeline.losses().dropped_total())
    }

    /// Exports what is queued within `within`, and never waits longer.
    pub(crate) async fn shutdown(&self, within: Duration) {
        let Some(shared) = &self.0 else { return };
        let Some(exporting) = shared.exporting.get() else {
            return;
        };
        let flushing = {
            let exporting = Arc::clone(exporting);
            tokio::task::spawn_blocking(move || exporting.pipeline.shutdown(within))
        };
        let flushed = match tokio::time::timeout(within, flushing).await {
            Ok(Ok(Ok(()))) => "yes",
            Ok(Ok(Err(_))) | Ok(Err(_)) | Err(_) => "no: out of time",
        };
        let losses = exporting.pipeline.losses();
        tracing::info!(
            service = shared.service,
            flushed,
            dropped_total = losses.dropped_total(),
            "trace export stopped"
        );
    }
}

/// The sampler's decision for a request. The caller decided when its
/// `traceparent` came, or its `X-Amzn-Trace-Id` said `Sampled=0|1`: that
/// is the (remote) parent a parent-based sampler follows. Otherwise the
/// request is a root and the root sampler decides.
fn decide(sampler: &Sampler, trace: &TraceContext) -> bool {
    let trace_id = TraceId::from_bytes(trace.trace_id_bytes());
    let parent = match (trace.caller_sampled(), trace.parent_id_bytes()) {
        (Some(sampled), Some(parent_id)) => {
            let flags = if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::NOT_SAMPLED
            };
            Context::new().with_remote_span_context(SpanContext::new(
                trace_id,
                SpanId::from_bytes(parent_id),
                flags,
                true,
                TraceState::default(),
            ))
        }
        _ => Context::new(),
    };
    let result = sampler.should_sample(Some(&parent), trace_id, "", &SpanKind::Server, &[], &[]);
    result.decision == SamplingDecision::RecordAndSample
}

/// `server.address`, `server.port` and `peer.service` of the peer call:
/// the peer's service name, so X-Ray names the downstream node.
fn peer_attributes(service: &str, peer: &PeerUrl) -> Vec<KeyValue> {
    let uri = peer.uri();
    let host = uri.host().unwrap_or_default().to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let peer_service = KnownService::named(service).map_or_else(
        || host.clone(),
        |known| known.peer_service().name.to_owned(),
    );
    vec![
        KeyValue::new("server.address", host),
        KeyValue::new("server.port", i64::from(port)),
        KeyValue::new("peer.service", peer_service),
    ]
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::{
        config::{Root, SamplerChoice},
        *,
    };

    fn context(pairs: &[(&'static str, &str)]) -> TraceContext {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).expect("ascii"));
        }
        TraceContext::from_headers(&headers)
    }

    const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const NOT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    const ALB: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn the_callers_decision_is_the_parents_and_roots_use_the_root_sampler() {
        use SamplerChoice::*;
        let on = ParentBased(Root::AlwaysOn);
        let off = ParentBased(Root::AlwaysOff);
        for (headers, choice, expected) in [
            (vec![("traceparent", SAMPLED)], off, true),
            (vec![("traceparent", NOT_SAMPLED)], on, false),
            (vec![], on, true),
            (vec![], off, false),
            (vec![], ParentBased(Root::Ratio(0.0)), false),
            (vec![], Ratio(1.0), true),
            (vec![("traceparent", SAMPLED)], AlwaysOff, false),
            (vec![("traceparent", NOT_SAMPLED)], AlwaysOn, true),
            // The ALB's header: a root with a trace id, no decision.
            (vec![("x-amzn-trace-id", ALB)], on, true),
            (vec![("x-amzn-trace-id", ALB)], off, false),
            (
                vec![(
                    "x-amzn-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                )],
                off,
                true,
            ),
            (
                vec![(
                    "x-amzn-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
                )],
                on,
                false,
            ),
            (
                vec![(
                    "x-amzn-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
                )],
                on,
                true,
            ),
        ] {
            let trace = context(&headers);
            assert_eq!(
                decide(&choice.sampler(), &trace),
                expected,
                "{headers:?} {choice:?}"
            );
        }
    }

    #[test]
    fn the_peer_is_named_for_x_ray() {
        let find = |attributes: &[KeyValue], key: &str| {
            attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        let url: PeerUrl = "http://service-b-sc:8202".parse().expect("url");
        let attributes = peer_attributes("service-a", &url);
        assert_eq!(
            find(&attributes, "server.address").as_deref(),
            Some("service-b-sc")
        );
        assert_eq!(find(&attributes, "server.port").as_deref(), Some("8202"));
        assert_eq!(
            find(&attributes, "peer.service").as_deref(),
            Some("service-b")
        );
        let url: PeerUrl = "http://peer.example".parse().expect("url");
        let attributes = peer_attributes("custom", &url);
        assert_eq!(find(&attributes, "server.port").as_deref(), Some("80"));
        assert_eq!(
            find(&attributes, "peer.service").as_deref(),
            Some("peer.example")
        );
    }

    #[test]
    fn with_export_off_sampling_changes_nothing() {
        let mut trace = context(&[("traceparent", SAMPLED)]);
        let before = trace.clone();
        Spans::default().sample(&mut trace);
        assert_eq!(trace, before);
    }
}
