//! What every exported span says about where it comes from: the service,
//! its version, and on ECS the task (from the task metadata the service
//! already reads), with the keys X-Ray and the AWS resource detectors use.
//! `OTEL_RESOURCE_ATTRIBUTES` adds to and overrides these, and
//! `OTEL_SERVICE_NAME` overrides the name, as the specification orders.

use opentelemetry::KeyValue;
use opentelemetry_sdk::{
    Resource,
    resource::{EnvResourceDetector, ResourceDetector, TelemetryResourceDetector},
};
use status_api::v1::EcsTask;

/// The resource of `service`'s spans.
pub(crate) fn resource(
    service: &str,
    name_override: Option<&str>,
    ecs: Option<&EcsTask>,
) -> Resource {
    let detectors: [Box<dyn ResourceDetector>; 2] = [
        Box::new(TelemetryResourceDetector),
        Box::new(EnvResourceDetector::new()),
    ];
    let builder = Resource::builder_empty()
        .with_attributes(own_attributes(service, ecs))
        .with_detectors(&detectors);
    match name_override {
        Some(name) => builder.with_service_name(name.to_owned()),
        None => builder,
    }
    .build()
}

fn own_attributes(service: &str, ecs: Option<&EcsTask>) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("service.name", service.to_owned()),
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    ];
    let Some(task) = ecs.filter(|task| !task.task_arn.is_empty()) else {
        return attributes;
    };
    attributes.push(KeyValue::new("cloud.provider", "aws"));
    attributes.push(KeyValue::new("cloud.platform", "aws_ecs"));
    attributes.push(KeyValue::new("aws.ecs.task.arn", task.task_arn.clone()));
    // arn:aws:ecs:<region>:<account>:task/<cluster>/<id>
    let mut arn = task.task_arn.split(':').skip(3);
    if let (Some(region), Some(account)) = (arn.next(), arn.next()) {
        attributes.push(KeyValue::new("cloud.region", region.to_owned()));
        attributes.push(KeyValue::new("cloud.account.id", account.to_owned()));
    }
    let optional = [
        ("aws.ecs.cluster.arn", task.cluster.clone()),
        ("aws.ecs.launchtype", task.launch_type.to_ascii_lowercase()),
        ("cloud.availability_zone", task.availability_zone.clone()),
    ];
    for (key, value) in optional {
        if !value.is_empty() {
            attributes.push(KeyValue::new(key, value));
        }
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(attributes: &[KeyValue], key: &str) -> Option<String> {
        attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn off_ecs_only_the_service_on_ecs_the_task_too() {
        let local = own_attributes("service-a", None);
        assert_eq!(find(&local, "service.name").as_deref(), Some("service-a"));
        assert!(find(&local, "service.version").is_some());
        assert_eq!(find(&local, "cloud.platform"), None);

        let task = EcsTask {
            task_arn: "arn:aws:ecs:us-east-2:111122223333:task/demo/0123".into(),
            cluster: "arn:aws:ecs:us-east-2:111122223333:cluster/demo".into(),
            availability_zone: "us-east-2b".into(),
            launch_type: "FARGATE".into(),
        };
        let ecs = own_attributes("service-b", Some(&task));
        for (key, expected) in [
            ("service.name", "service-b"),
            ("cloud.provider", "aws"),
            ("cloud.platform", "aws_ecs"),
            ("cloud.region", "us-east-2"),
            ("cloud.account.id", "111122223333"),
            ("cloud.availability_zone", "us-east-2b"),
            (
                "aws.ecs.task.arn",
                "arn:aws:ecs:us-east-2:111122223333:task/demo/0123",
            ),
            (
                "aws.ecs.cluster.arn",
                "arn:aws:ecs:us-east-2:111122223333:cluster/demo",
            ),
            ("aws.ecs.launchtype", "fargate"),
        ] {
            assert_eq!(find(&ecs, key).as_deref(), Some(expected), "{key}");
        }
    }

    #[test]
    fn otel_service_name_wins() {
        let resource = resource("service-a", Some("checkout"), None);
        assert_eq!(
            resource
                .get(&opentelemetry::Key::new("service.name"))
                .map(|v| v.to_string())
                .as_deref(),
            Some("checkout")
        );
    }
}
