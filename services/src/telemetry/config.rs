//! Which standard OpenTelemetry variables turn trace export on, and the ones
//! the Rust SDK does not read by itself.
//!
//! Export is off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set; `OTEL_SDK_DISABLED=true` and
//! `OTEL_TRACES_EXPORTER=none` turn it off again (the SDK reads neither).
//! The endpoint itself, timeouts, headers, compression and `OTEL_BSP_*`
//! are read by the SDK. A value that cannot be understood is logged and
//! replaced by its default, as the OpenTelemetry specification asks of
//! these variables (they are not this service's own settings).

use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;

/// The transport of `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// `OTEL_TRACES_SAMPLER` (+ `_ARG`), as understood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBased(Root),
}

/// The root sampler of a `parentbased_*` sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Root {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

impl SamplerChoice {
    pub(crate) fn sampler(self) -> Sampler {
        let root = |root| match root {
            Root::AlwaysOn => Sampler::AlwaysOn,
            Root::AlwaysOff => Sampler::AlwaysOff,
            Root::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
        };
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
            Self::ParentBased(choice) => Sampler::ParentBased(Box::new(root(choice))),
        }
    }
}

/// Trace export as the environment asks for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TraceConfig {
    pub(crate) protocol: Protocol,
    /// The endpoint variable that turned export on, for the start line.
    pub(crate) endpoint: String,
    pub(crate) sampler: SamplerChoice,
    /// `OTEL_SERVICE_NAME`, which wins over the service's own name.
    pub(crate) service_name: Option<String>,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans beyond it are dropped and counted.
    pub(crate) max_queue_size: usize,
    /// `OTEL_BSP_EXPORT_TIMEOUT`: one export's bound (the SDK's thread-based
    /// processor ignores it, so it is applied here).
    pub(crate) export_timeout: Duration,
}

/// The SDK's defaults for the batch processor's variables.
const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why export is off, for the start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Off {
    NoEndpoint,
    Disabled(&'static str),
}

impl TraceConfig {
    /// Reads the variables through `var` (the process environment, or a
    /// table in tests). Returns the warnings for values it could not use.
    pub(crate) fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
    ) -> (Result<Self, Off>, Vec<String>) {
        let mut warnings = Vec::new();
        let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let Some(endpoint) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return (Err(Off::NoEndpoint), warnings);
        };
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return (Err(Off::Disabled("OTEL_SDK_DISABLED=true")), warnings);
        }
        if let Some(exporters) = var("OTEL_TRACES_EXPORTER") {
            let names: Vec<String> = exporters
                .split(',')
                .map(|name| name.trim().to_ascii_lowercase())
                .collect();
            if names.iter().any(|name| name == "none") {
                return (Err(Off::Disabled("OTEL_TRACES_EXPORTER=none")), warnings);
            }
            if !names.iter().any(|name| name == "otlp") {
                warnings.push(format!(
                    "OTEL_TRACES_EXPORTER={exporters:?}: only otlp is supported; exporting with otlp"
                ));
            }
        }
        let protocol = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
            .map(str::trim)
        {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                warnings.push(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported (grpc, http/protobuf): using http/protobuf"
                ));
                Protocol::HttpProtobuf
            }
        };
        let sampler = sampler(
            var("OTEL_TRACES_SAMPLER").as_deref(),
            var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            &mut warnings,
        );
        let max_queue_size = match var("OTEL_BSP_MAX_QUEUE_SIZE") {
            None => DEFAULT_MAX_QUEUE_SIZE,
            Some(value) => match value.trim().parse::<usize>() {
                Ok(size) if size > 0 => size,
                _ => {
                    warnings.push(format!(
                        "OTEL_BSP_MAX_QUEUE_SIZE={value:?} is not a positive integer: using {DEFAULT_MAX_QUEUE_SIZE}"
                    ));
                    DEFAULT_MAX_QUEUE_SIZE
                }
            },
        };
        let export_timeout = match var("OTEL_BSP_EXPORT_TIMEOUT") {
            None => DEFAULT_EXPORT_TIMEOUT,
            Some(value) => match value.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    warnings.push(format!(
                        "OTEL_BSP_EXPORT_TIMEOUT={value:?} is not a positive number of milliseconds: using 30000"
                    ));
                    DEFAULT_EXPORT_TIMEOUT
                }
            },
        };
        let config = Self {
            protocol,
            endpoint,
            sampler,
            service_name: var("OTEL_SERVICE_NAME"),
            max_queue_size,
            export_timeout,
        };
        (Ok(config), warnings)
    }
}

/// `OTEL_TRACES_SAMPLER` and its argument. The default, and the fallback for
/// what is not understood, is `parentbased_always_on`. `xray` (AWS's remote
/// sampler) is not available in the Rust SDK: it falls back too.
fn sampler(name: Option<&str>, arg: Option<&str>, warnings: &mut Vec<String>) -> SamplerChoice {
    let ratio = |warnings: &mut Vec<String>| match arg.map(|a| a.trim().parse::<f64>()) {
        None => 1.0,
        Some(Ok(ratio)) if (0.0..=1.0).contains(&ratio) => ratio,
        Some(_) => {
            warnings.push(format!(
                "OTEL_TRACES_SAMPLER_ARG={:?} is not a ratio in [0, 1]: using 1.0",
                arg.unwrap_or_default()
            ));
            1.0
        }
    };
    let default = SamplerChoice::ParentBased(Root::AlwaysOn);
    match name.map(|n| n.trim().to_ascii_lowercase()).as_deref() {
        None | Some("parentbased_always_on") => default,
        Some("always_on") => SamplerChoice::AlwaysOn,
        Some("always_off") => SamplerChoice::AlwaysOff,
        Some("traceidratio") => SamplerChoice::Ratio(ratio(warnings)),
        Some("parentbased_always_off") => SamplerChoice::ParentBased(Root::AlwaysOff),
        Some("parentbased_traceidratio") => {
            SamplerChoice::ParentBased(Root::Ratio(ratio(warnings)))
        }
        Some(other) => {
            warnings.push(format!(
                "OTEL_TRACES_SAMPLER={other:?} is not supported: using parentbased_always_on"
            ));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> (Result<TraceConfig, Off>, Vec<String>) {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TraceConfig::from_lookup(|name| env.get(name).cloned())
    }

    const ENDPOINT: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");

    #[test]
    fn export_is_off_without_an_endpoint_and_when_disabled() {
        for (pairs, expected) in [
            (vec![], Off::NoEndpoint),
            (vec![("OTEL_EXPORTER_OTLP_ENDPOINT", " ")], Off::NoEndpoint),
            (vec![("OTEL_TRACES_SAMPLER", "always_on")], Off::NoEndpoint),
            (
                vec![ENDPOINT, ("OTEL_SDK_DISABLED", "TRUE")],
                Off::Disabled("OTEL_SDK_DISABLED=true"),
            ),
            (
                vec![ENDPOINT, ("OTEL_TRACES_EXPORTER", "none")],
                Off::Disabled("OTEL_TRACES_EXPORTER=none"),
            ),
            (
                vec![
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "http://c:4318/v1/traces",
                    ),
                    ("OTEL_TRACES_EXPORTER", "otlp, none"),
                ],
                Off::Disabled("OTEL_TRACES_EXPORTER=none"),
            ),
        ] {
            assert_eq!(parse(&pairs).0, Err(expected), "{pairs:?}");
        }
    }

    #[test]
    fn an_endpoint_turns_export_on_with_the_standard_defaults() {
        for (pairs, endpoint) in [
            (vec![ENDPOINT], "http://127.0.0.1:4318"),
            (
                vec![(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://c:4318/v1/traces",
                )],
                "http://c:4318/v1/traces",
            ),
            (
                vec![
                    ENDPOINT,
                    ("OTEL_SDK_DISABLED", "false"),
                    ("OTEL_TRACES_EXPORTER", "otlp"),
                ],
                "http://127.0.0.1:4318",
            ),
        ] {
            let (config, warnings) = parse(&pairs);
            let config = config.expect("on");
            assert_eq!(config.endpoint, endpoint);
            assert_eq!(config.protocol, Protocol::HttpProtobuf);
            assert_eq!(config.sampler, SamplerChoice::ParentBased(Root::AlwaysOn));
            assert_eq!(config.max_queue_size, 2048);
            assert_eq!(config.export_timeout, Duration::from_secs(30));
            assert_eq!(config.service_name, None);
            assert!(warnings.is_empty(), "{warnings:?}");
        }
    }

    #[test]
    fn protocols_and_the_traces_variable_first() {
        for (pairs, expected, warned) in [
            (
                vec![ENDPOINT, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                Protocol::Grpc,
                false,
            ),
            (
                vec![
                    ENDPOINT,
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
                ],
                Protocol::HttpProtobuf,
                false,
            ),
            (
                vec![ENDPOINT, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                Protocol::HttpProtobuf,
                true,
            ),
        ] {
            let (config, warnings) = parse(&pairs);
            assert_eq!(config.expect("on").protocol, expected, "{pairs:?}");
            assert_eq!(!warnings.is_empty(), warned, "{pairs:?}: {warnings:?}");
        }
    }

    #[test]
    fn samplers_and_their_arguments() {
        use SamplerChoice::*;
        for (name, arg, expected, warned) in [
            ("always_on", None, AlwaysOn, false),
            ("always_off", None, AlwaysOff, false),
            ("traceidratio", Some("0.25"), Ratio(0.25), false),
            ("traceidratio", None, Ratio(1.0), false),
            ("traceidratio", Some("2"), Ratio(1.0), true),
            ("traceidratio", Some("x"), Ratio(1.0), true),
            (
                "parentbased_always_on",
                None,
                ParentBased(Root::AlwaysOn),
                false,
            ),
            (
                "PARENTBASED_ALWAYS_OFF",
                None,
                ParentBased(Root::AlwaysOff),
                false,
            ),
            (
                "parentbased_traceidratio",
                Some("0.05"),
                ParentBased(Root::Ratio(0.05)),
                false,
            ),
            ("xray", None, ParentBased(Root::AlwaysOn), true),
            ("jaeger_remote", None, ParentBased(Root::AlwaysOn), true),
        ] {
            let mut pairs = vec![ENDPOINT, ("OTEL_TRACES_SAMPLER", name)];
            if let Some(arg) = arg {
                pairs.push(("OTEL_TRACES_SAMPLER_ARG", arg));
            }
            let (config, warnings) = parse(&pairs);
            assert_eq!(config.expect("on").sampler, expected, "{name} {arg:?}");
            assert_eq!(!warnings.is_empty(), warned, "{name} {arg:?}: {warnings:?}");
        }
    }

    #[test]
    fn batch_settings_and_service_name() {
        let (config, warnings) = parse(&[
            ENDPOINT,
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1500"),
            ("OTEL_SERVICE_NAME", "checkout"),
        ]);
        let config = config.expect("on");
        assert_eq!(config.max_queue_size, 64);
        assert_eq!(config.export_timeout, Duration::from_millis(1500));
        assert_eq!(config.service_name.as_deref(), Some("checkout"));
        assert!(warnings.is_empty(), "{warnings:?}");

        let (config, warnings) = parse(&[
            ENDPOINT,
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "soon"),
        ]);
        let config = config.expect("on");
        assert_eq!(config.max_queue_size, 2048);
        assert_eq!(config.export_timeout, Duration::from_secs(30));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
