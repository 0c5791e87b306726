//! The observability variables accept what the code accepts: the metric
//! namespace and interval as `status_services::config::Cli` parses them,
//! the alarm thresholds, and the notification settings.

use std::time::Duration;

use hcl::{Map, Value};

use crate::{context, eval::Iac, eval::real_files, serve};

#[test]
fn variables_accept_what_the_code_accepts() {
    let iac = Iac::parse(&real_files());
    let context = context::context(&iac, &[]);
    let accepts = |name: &str, value: Value| iac.accepts(&context, name, value);

    // metrics_namespace: the code's rule exactly; empty means var.name.
    assert_eq!(accepts("metrics_namespace", Value::from("")), Some(true));
    for namespace in [
        "scdemo".to_owned(),
        "team/status-service".to_owned(),
        "a.b-c_d/e#f:g".to_owned(),
        "n".repeat(255),
        "n".repeat(256),
        "AWS/ECS".to_owned(),
        "AWS/".to_owned(),
        "aws/lowercase".to_owned(),
        "with space".to_owned(),
        "naïve".to_owned(),
        "a*b".to_owned(),
    ] {
        let code = serve(&["--metrics-namespace", &namespace]);
        assert_eq!(
            accepts("metrics_namespace", Value::from(namespace.clone())),
            Some(code.is_ok()),
            "metrics_namespace {namespace:?}: the code says {code:?}"
        );
    }

    // emf_interval: whole seconds from 10 to 60, each one the code parses.
    for (interval, accepted) in [
        ("60s", true),
        ("10s", true),
        ("30s", true),
        ("9s", false),
        ("61s", false),
        ("0s", false),
        ("1m", false),
        ("60", false),
        ("60 s", false),
        ("500ms", false),
    ] {
        assert_eq!(
            accepts("emf_interval", Value::from(interval)),
            Some(accepted),
            "emf_interval {interval}"
        );
        if accepted {
            let seconds: u64 = interval.trim_end_matches('s').parse().unwrap();
            assert_eq!(
                serve(&["--emf-interval", interval]).map(|r| r.emf_interval),
                Ok(Duration::from_secs(seconds))
            );
        }
    }

    // Thresholds.
    for (name, value, accepted) in [
        ("alarm_5xx_rate_percent", 5.0, true),
        ("alarm_5xx_rate_percent", 0.5, true),
        ("alarm_5xx_rate_percent", 0.0, false),
        ("alarm_5xx_rate_percent", 101.0, false),
        ("alarm_p99_latency_ms", 500.0, true),
        ("alarm_p99_latency_ms", 0.0, false),
        ("alarm_peer_errors_per_minute", 1.0, true),
        ("alarm_peer_errors_per_minute", 0.0, false),
        ("alarm_peer_errors_per_minute", 1.5, false),
        ("alarm_unhealthy_hosts", 1.0, true),
        ("alarm_unhealthy_hosts", 0.0, false),
    ] {
        assert_eq!(
            accepts(name, Value::from(value)),
            Some(accepted),
            "{name} = {value}"
        );
    }

    // Notifications: an existing topic, or a created one (with an optional
    // email), or none.
    let arn = "arn:aws:sns:us-east-2:123456789012:ops-alarms";
    for (topic_arn, create_topic, email, accepted) in [
        ("", false, "", true),
        (arn, false, "", true),
        ("", true, "", true),
        ("", true, "ops@example.com", true),
        (arn, true, "", false),
        ("", false, "ops@example.com", false),
        ("", true, "not-an-address", false),
        ("ops-alarms", false, "", false),
    ] {
        let mut value = Map::new();
        value.insert("topic_arn".to_owned(), Value::from(topic_arn));
        value.insert("create_topic".to_owned(), Value::Bool(create_topic));
        value.insert("email".to_owned(), Value::from(email));
        assert_eq!(
            accepts("alarm_notifications", Value::Object(value)),
            Some(accepted),
            "alarm_notifications {topic_arn:?} {create_topic} {email:?}"
        );
    }
}
