//! From a finished span to the collector: the SDK's batch processor and OTLP
//! exporter, with what they lack here.
//!
//! - A bounded queue that counts what it drops: a span is refused (and
//!   counted) when `OTEL_BSP_MAX_QUEUE_SIZE` spans are waiting or being
//!   exported, so the SDK's own queue never overflows unseen; spans whose
//!   export fails (collector down or slow) are counted too. A warning at
//!   most once a second says how many; the total is in the stop line.
//! - Exports run on the service's tokio runtime (the processor's thread has
//!   none, which the hyper and tonic clients need), each bounded by
//!   `OTEL_BSP_EXPORT_TIMEOUT` (the thread-based processor ignores it).
//!
//! A request never waits on any of this: handing a span over is a
//! non-blocking channel send.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanExporter, SpanProcessor},
};
use tokio::runtime::Handle;

use super::config::{Protocol, TraceConfig};
use crate::throttle::Throttle;

/// Spans refused or lost, shared by the queue and the exporter.
#[derive(Debug, Default)]
pub(crate) struct Losses {
    /// Spans handed to the processor whose export has not ended.
    pending: AtomicUsize,
    dropped: AtomicU64,
    warnings: Throttle,
}

impl Losses {
    fn dropped(&self, spans: u64, why: &'static str) {
        let total = self.dropped.fetch_add(spans, Ordering::Relaxed) + spans;
        if self.warnings.event().is_some() {
            tracing::warn!(dropped_total = total, reason = why, "trace spans dropped");
        }
    }

    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The processor, and the bound in front of it.
#[derive(Debug)]
pub(crate) struct Pipeline {
    processor: BatchSpanProcessor,
    max_queue_size: usize,
    losses: Arc<Losses>,
}

impl Pipeline {
    /// Builds the exporter for `config`'s protocol (the SDK reads the
    /// endpoint, timeout, headers and compression variables itself).
    pub(crate) fn build(
        config: &TraceConfig,
        resource: &Resource,
        runtime: Handle,
    ) -> Result<Self, opentelemetry_otlp::ExporterBuildError> {
        let builder = opentelemetry_otlp::SpanExporter::builder();
        let mut exporter = match config.protocol {
            Protocol::Grpc => builder.with_tonic().build()?,
            Protocol::HttpProtobuf => builder
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()?,
        };
        exporter.set_resource(resource);
        Ok(Self::with_exporter(
            exporter,
            config.max_queue_size,
            config.export_timeout,
            runtime,
        ))
    }

    fn with_exporter<E: SpanExporter + 'static>(
        exporter: E,
        max_queue_size: usize,
        export_timeout: Duration,
        runtime: Handle,
    ) -> Self {
        let losses = Arc::new(Losses::default());
        let exporter = OnRuntime {
            inner: Arc::new(exporter),
            runtime,
            timeout: export_timeout,
            losses: Arc::clone(&losses),
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(max_queue_size)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        Self {
            processor,
            max_queue_size,
            losses,
        }
    }

    /// Queues a finished span, or drops and counts it when the queue is full.
    pub(crate) fn send(&self, span: SpanData) {
        let pending = self.losses.pending.fetch_add(1, Ordering::Relaxed);
        if pending >= self.max_queue_size {
            self.losses.pending.fetch_sub(1, Ordering::Relaxed);
            self.losses.dropped(1, "export queue full");
            return;
        }
        self.processor.on_end(span);
    }

    pub(crate) fn losses(&self) -> &Losses {
        &self.losses
    }

    /// Exports what is queued within `timeout` and stops the processor's
    /// thread (blocking: run it off the runtime's workers).
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.processor.shutdown_with_timeout(timeout)
    }
}

/// The OTLP exporter, run on the service's runtime with a bound per export.
#[derive(Debug)]
struct OnRuntime<E> {
    inner: Arc<E>,
    runtime: Handle,
    timeout: Duration,
    losses: Arc<Losses>,
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let inner = Arc::clone(&self.inner);
        let timeout = self.timeout;
        let exported = self
            .runtime
            .spawn(async move { tokio::time::timeout(timeout, inner.export(batch)).await })
            .await;
        self.losses.pending.fetch_sub(spans, Ordering::Relaxed);
        let why = match exported {
            Ok(Ok(Ok(()))) => return Ok(()),
            Ok(Ok(Err(_))) => "export failed (collector down or refusing)",
            Ok(Err(_)) => "export timed out (OTEL_BSP_EXPORT_TIMEOUT)",
            Err(_) => "export task ended (runtime stopping)",
        };
        self.losses.dropped(spans as u64, why);
        // Counted and logged here; the processor need not log it again.
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Set on the exporter before it was shared; a later call (the
        // processor's, with the resource it was given) changes nothing.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use opentelemetry::{
        InstrumentationScope,
        trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
    };
    use opentelemetry_sdk::{
        error::OTelSdkError,
        trace::{SpanEvents, SpanLinks},
    };

    use super::*;

    /// A collector that never answers, or refuses every export.
    #[derive(Debug)]
    struct Collector {
        hangs: bool,
    }

    impl SpanExporter for Collector {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            if self.hangs {
                std::future::pending::<()>().await;
            }
            Err(OTelSdkError::InternalFailure("refused".into()))
        }
    }

    fn span() -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes([1; 16]),
                SpanId::from_bytes([2; 8]),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_span_is_exported_or_counted_and_the_stop_is_bounded() {
        for hangs in [false, true] {
            let pipeline = Arc::new(Pipeline::with_exporter(
                Collector { hangs },
                16,
                Duration::from_millis(100),
                Handle::current(),
            ));
            for _ in 0..1000 {
                pipeline.send(span());
            }
            // Beyond the queue, refused at once.
            assert!(
                pipeline.losses().dropped_total() >= 1000 - 16,
                "hangs: {hangs}"
            );
            let stopping = Arc::clone(&pipeline);
            let stopped = tokio::time::timeout(
                Duration::from_secs(10),
                tokio::task::spawn_blocking(move || stopping.shutdown(Duration::from_secs(2))),
            )
            .await;
            assert!(stopped.is_ok(), "shutdown not bounded (hangs: {hangs})");
            // None exported: each one refused, failed or timed out, and counted.
            assert_eq!(pipeline.losses().dropped_total(), 1000, "hangs: {hangs}");
        }
    }
}
