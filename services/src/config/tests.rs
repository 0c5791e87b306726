//! The configuration's tests: the defaults each subcommand and service
//! gets, bad values named with their variable, and settings that must
//! agree with each other.

use super::*;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("status-service").chain(args.iter().copied()))
}

#[test]
fn no_subcommand_means_local_on_loopback() {
    let cli = parse(&[]).expect("parses");
    assert!(cli.command.is_none());
    let configs = cli.local.service_configs().expect("valid defaults");
    let summary: Vec<_> = configs
        .iter()
        .map(|c| {
            (
                c.service_name.to_string(),
                c.listen_address.to_string(),
                c.peer.url.to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "service-a".into(),
                "127.0.0.1:8201".into(),
                "http://127.0.0.1:8202".into()
            ),
            (
                "service-b".into(),
                "127.0.0.1:8202".into(),
                "http://127.0.0.1:8201".into()
            ),
        ]
    );
}

#[test]
fn serve_defaults_follow_the_service_name() {
    let cli = parse(&["serve", "--service-name", "service-b"]).expect("parses");
    let Some(Command::Serve(args)) = cli.command else {
        panic!("not serve")
    };
    let config = args.service_config().expect("valid");
    assert_eq!(config.listen_address.to_string(), "0.0.0.0:8202");
    assert_eq!(config.peer.url.to_string(), "http://service-a-sc:8201");
    assert_eq!(config.drain_delay, Duration::from_secs(5));
}

#[test]
fn unknown_service_needs_port_and_peer() {
    let cli = parse(&["serve", "--service-name", "service-c"]).expect("parses");
    let Some(Command::Serve(args)) = cli.command else {
        panic!("not serve")
    };
    let name: ServiceName = "service-c".parse().expect("valid name");
    assert_eq!(
        args.service_config().unwrap_err(),
        ConfigError::NoDefaultPeer(name)
    );
}

#[test]
fn bad_values_are_rejected_with_the_variable_and_value() {
    for (args, needle) in [
        (
            &["serve", "--server-port", "0"][..],
            "'0' for '--server-port <SERVER_PORT>'",
        ),
        (
            &["serve", "--server-port", "70000"][..],
            "'70000' for '--server-port <SERVER_PORT>'",
        ),
        (
            &["serve", "--peer-url", "ftp://x"][..],
            "'ftp://x' for '--peer-url <PEER_URL>'",
        ),
        (
            &["serve", "--peer-url", "service-b-sc:8202"][..],
            "<PEER_URL>",
        ),
        (
            &["serve", "--service-name", ""][..],
            "'' for '--service-name <SERVICE_NAME>'",
        ),
        (
            &["serve", "--drain-delay", "soon"][..],
            "'soon' for '--drain-delay <DRAIN_DELAY>'",
        ),
        (
            &["serve", "--metrics-interval", "10ms"][..],
            "must be at least 200ms",
        ),
    ] {
        let error = parse(args).expect_err("must be rejected").to_string();
        assert!(error.contains(needle), "{args:?}: {error}");
    }
}

fn serve_config(args: &[&str]) -> Result<ServiceConfig, ConfigError> {
    let cli = parse(&[&["serve"][..], args].concat()).expect("parses");
    let Some(Command::Serve(args)) = cli.command else {
        panic!("not serve")
    };
    args.service_config()
}

#[test]
fn max_peer_calls_follows_and_stays_within_the_peers_stream_limit() {
    for (args, expected) in [
        (&[][..], Ok(limits::DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS)),
        (&["--http2-max-concurrent-streams", "10"], Ok(10)),
        (&["--max-peer-calls", "100"], Ok(100)),
        (&["--max-peer-calls", "7"], Ok(7)),
        (
            &["--max-peer-calls", "101"],
            Err(ConfigError::TooManyPeerCalls {
                max_peer_calls: 101,
                streams: 100,
            }),
        ),
    ] {
        let max_calls = serve_config(args).map(|config| config.peer.max_calls);
        assert_eq!(max_calls, expected, "{args:?}");
    }
}

#[test]
fn the_deadline_margin_is_less_than_half_the_request_timeout() {
    for (args, ok) in [
        (&[][..], true),
        (&["--peer-deadline-margin", "14999ms"], true),
        (&["--peer-deadline-margin", "15s"], false),
        (&["--request-timeout", "40ms"], false),
        (&["--request-timeout", "41ms"], true),
    ] {
        let config = serve_config(args);
        assert_eq!(config.is_ok(), ok, "{args:?}: {config:?}");
        if let Err(error) = config {
            assert!(
                matches!(error, ConfigError::MarginTooLong { .. }),
                "{error}"
            );
        }
    }
}
