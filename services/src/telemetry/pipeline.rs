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
        let losses = Arc::new(Losses::default());
        let exporter = OnRuntime {
            inner: Arc::new(exporter),
            runtime,
            timeout: config.export_timeout,
            losses: Arc::clone(&losses),
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(config.max_queue_size)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        Ok(Self {
            processor,
            max_queue_size: config.max_queue_size,
            losses,
        })
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
