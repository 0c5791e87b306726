//! ECS task metadata (endpoint v4).
//!
//! The ECS agent sets `ECS_CONTAINER_METADATA_URI_V4` in every container;
//! `GET {uri}/task` describes the task. It is read once at start: none of the
//! fields shown can change during a task's life. An answer that does not
//! describe a task (no `TaskARN`) is an error like any other: the status
//! then has no `ecs_task`, rather than an empty one made up.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;
use status_api::v1::EcsTask;

#[derive(Debug, thiserror::Error)]
pub enum EcsMetadataError {
    #[error("invalid metadata URI {0:?}")]
    Uri(String),
    #[error("metadata request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("metadata endpoint answered HTTP {0}")]
    Status(http::StatusCode),
    #[error("reading the metadata body failed: {0}")]
    Body(#[from] hyper::Error),
    #[error("metadata is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("metadata does not describe a task: {0} has no TaskARN")]
    NotATask(&'static str),
}

/// Reads the task's ARN, cluster, availability zone and launch type.
pub async fn fetch_task(
    metadata_uri: &str,
    timeout: Duration,
) -> Result<EcsTask, EcsMetadataError> {
    tokio::time::timeout(timeout, fetch_task_json(metadata_uri))
        .await
        .map_err(|_| EcsMetadataError::Timeout(timeout))
        .and_then(|task| task_from_json(&task?))
}

async fn fetch_task_json(metadata_uri: &str) -> Result<Value, EcsMetadataError> {
    let url = format!("{}/task", metadata_uri.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .map_err(|_| EcsMetadataError::Uri(metadata_uri.to_owned()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(uri).await?;
    if !response.status().is_success() {
        return Err(EcsMetadataError::Status(response.status()));
    }
    let body = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

/// Picks the fields we show from a task description, which must at least
/// name the task; another field the endpoint leaves out stays empty.
fn task_from_json(task: &Value) -> Result<EcsTask, EcsMetadataError> {
    let field = |name: &str| {
        task.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let task_arn = field("TaskARN");
    if task_arn.is_empty() {
        return Err(EcsMetadataError::NotATask(match task {
            Value::Object(_) => "the object",
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null => "null",
        }));
    }
    Ok(EcsTask {
        task_arn,
        cluster: field("Cluster"),
        availability_zone: field("AvailabilityZone"),
        launch_type: field("LaunchType"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_fields() {
        // Abridged from the task metadata v4 documentation's Fargate example.
        let task = serde_json::json!({
            "Cluster": "arn:aws:ecs:us-east-2:111122223333:cluster/demo",
            "TaskARN": "arn:aws:ecs:us-east-2:111122223333:task/demo/0123456789abcdef",
            "Family": "service-a",
            "AvailabilityZone": "us-east-2b",
            "LaunchType": "FARGATE"
        });
        let parsed = task_from_json(&task).expect("a task");
        assert_eq!(
            parsed.cluster,
            "arn:aws:ecs:us-east-2:111122223333:cluster/demo"
        );
        assert_eq!(
            parsed.task_arn,
            "arn:aws:ecs:us-east-2:111122223333:task/demo/0123456789abcdef"
        );
        assert_eq!(parsed.availability_zone, "us-east-2b");
        assert_eq!(parsed.launch_type, "FARGATE");
        let only_arn = serde_json::json!({"TaskARN": "arn:aws:ecs:::task/x"});
        assert_eq!(
            task_from_json(&only_arn).expect("a task").cluster,
            "",
            "a field left out stays empty"
        );
    }

    #[test]
    fn json_that_is_not_a_task_is_an_error_not_an_empty_task() {
        for json in [
            "[]",
            "{}",
            "null",
            "\"task\"",
            "7",
            r#"{"TaskARN": 5}"#,
            r#"{"TaskARN": ""}"#,
            r#"[{"TaskARN": "arn:aws:ecs:::task/x"}]"#,
        ] {
            let value: Value = serde_json::from_str(json).expect("valid JSON");
            let parsed = task_from_json(&value);
            assert!(
                matches!(parsed, Err(EcsMetadataError::NotATask(_))),
                "{json}: {parsed:?}"
            );
        }
    }
}
