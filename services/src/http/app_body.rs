//! The body of every answer the envelope sends, one enum over the bodies of
//! its three kinds of routes, so that none is boxed into another: its own
//! module because the envelope's future and its bodies are separate jobs.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use status_gateway::RestBody;

pin_project! {
    /// Every answer's body: tonic's (gRPC, gRPC-Web), the REST routes'
    /// (gzip or not) or axum's (the envelope's own answers), without boxing
    /// one into another.
    #[project = AppBodyProjection]
    pub(crate) enum AppBody {
        Grpc { #[pin] body: tonic::body::Body },
        Rest { #[pin] body: RestBody },
        Http { #[pin] body: Body },
    }
}

impl AppBody {
    pub(crate) fn grpc(body: tonic::body::Body) -> Self {
        Self::Grpc { body }
    }

    pub(crate) fn rest(body: RestBody) -> Self {
        Self::Rest { body }
    }

    pub(crate) fn http(body: Body) -> Self {
        Self::Http { body }
    }
}

impl Default for AppBody {
    fn default() -> Self {
        Self::http(Body::empty())
    }
}

impl http_body::Body for AppBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            AppBodyProjection::Grpc { body } => body.poll_frame(cx).map_err(Into::into),
            AppBodyProjection::Rest { body } => body.poll_frame(cx),
            AppBodyProjection::Http { body } => body.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Grpc { body } => body.is_end_stream(),
            Self::Rest { body } => body.is_end_stream(),
            Self::Http { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Grpc { body } => body.size_hint(),
            Self::Rest { body } => body.size_hint(),
            Self::Http { body } => body.size_hint(),
        }
    }
}
