//! The provider-schema check: unit tests that show each kind of mistake is
//! caught (on a tiny inline schema, on the committed aws schema, and on
//! deliberately broken copies of the real IaC), and the check of the real
//! `IaC/*.tf` itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use hcl::{Attribute, Body, Expression, Structure};
use iac_checks::schema::{
    Finding, Problem, ProviderSchema, Schema, check_body, check_dir, check_source, iac_dir,
    schema_dir,
};

/// A tiny provider: `test_service` mimics aws_ecs_service's nesting.
const TEST_SCHEMA: &str = r#"{
  "package": "test", "package_version": "0", "provider": "test", "provider_version": "0",
  "resources": {
    "test_service": {
      "attributes": {
        "name": {"required": true},
        "tags": {"required": false},
        "arn": {"required": false, "computed_only": true}
      },
      "blocks": {
        "network": {
          "required": true, "nesting": "list", "max_items": 1,
          "attributes": {"subnets": {"required": true}}, "blocks": {}
        },
        "connect": {
          "required": false, "nesting": "list", "max_items": 1,
          "attributes": {"enabled": {"required": true}},
          "blocks": {
            "service": {
              "required": false, "nesting": "list",
              "attributes": {"port_name": {"required": true}},
              "blocks": {
                "tls": {
                  "required": false, "nesting": "list", "max_items": 1,
                  "attributes": {"role_arn": {"required": false}},
                  "blocks": {
                    "issuer": {
                      "required": true, "nesting": "list", "max_items": 1,
                      "attributes": {"arn": {"required": true}}, "blocks": {}
                    }
                  }
                }
              }
            }
          }
        },
        "ingress": {
          "required": false, "nesting": "set", "attribute_syntax": true,
          "attributes": {"port": {"required": false}}, "blocks": {}
        }
      }
    }
  },
  "data_sources": {
    "test_lookup": {"attributes": {"name": {"required": true}}, "blocks": {}}
  }
}"#;

fn test_schema() -> Schema {
    Schema {
        providers: vec![ProviderSchema::from_json(TEST_SCHEMA).expect("test schema")],
    }
}

fn committed_schema() -> Schema {
    Schema::load_dir(&schema_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn check(hcl: &str) -> Vec<Finding> {
    check_source("IaC/test.tf", hcl, &test_schema())
}

/// (path, problem) of each finding, for compact assertions.
fn problems(findings: &[Finding]) -> Vec<(String, Problem)> {
    findings
        .iter()
        .map(|f| (f.path.join("."), f.problem.clone()))
        .collect()
}

fn one(path: &str, problem: Problem) -> Vec<(String, Problem)> {
    vec![(path.into(), problem)]
}

const VALID: &str = r#"
resource "test_service" "this" {
  count      = 1
  depends_on = []
  provider   = test.other
  name       = "svc"
  tags       = { a = "b" }
  network { subnets = [] }
  connect {
    enabled = true
    service {
      port_name = "grpc"
      tls {
        role_arn = "r"
        issuer { arn = "a" }
      }
    }
  }
  ingress = [{ port = 1 }]
  lifecycle { ignore_changes = [tags] }
  timeouts { create = "1m" }
}
data "test_lookup" "x" { name = "n" }
variable "v" { type = string }
locals { anything = { goes = true } }
"#;

#[test]
fn valid_configuration_has_no_findings() {
    assert_eq!(check(VALID), vec![]);
}

#[test]
fn unknown_attribute_is_reported_with_its_path() {
    let findings = check(
        r#"
resource "test_service" "this" {
  name = "svc"
  network { subnets = [] }
  connect {
    enabled = true
    service {
      port_name = "grpc"
      tls {
        issuer_arn = "wrong"
        issuer { arn = "a" }
      }
    }
  }
}"#,
    );
    assert_eq!(
        problems(&findings),
        one(
            "connect.service.tls",
            Problem::UnknownAttribute("issuer_arn".into())
        )
    );
    assert_eq!(
        findings[0].to_string(),
        r#"IaC/test.tf: test_service.this: connect.service.tls: unknown attribute "issuer_arn""#
    );
}

#[test]
fn unknown_block_is_reported() {
    let findings = check(
        r#"
resource "test_service" "this" {
  name = "svc"
  network { subnets = [] }
  load_balancer { port = 1 }
}"#,
    );
    assert_eq!(
        problems(&findings),
        one("", Problem::UnknownBlock("load_balancer".into()))
    );
}

#[test]
fn block_written_as_attribute_is_reported() {
    let findings = check(
        r#"
resource "test_service" "this" {
  name    = "svc"
  network = { subnets = [] }
}"#,
    );
    // The block is also missing: `network = {...}` does not count as one.
    assert_eq!(
        problems(&findings),
        vec![
            (String::new(), Problem::BlockAsAttribute("network".into())),
            (String::new(), Problem::MissingBlock("network".into())),
        ]
    );
}

#[test]
fn attribute_written_as_block_is_reported() {
    let findings = check(
        r#"
resource "test_service" "this" {
  name = "svc"
  network { subnets = [] }
  tags { a = "b" }
}"#,
    );
    assert_eq!(
        problems(&findings),
        one("", Problem::AttributeAsBlock("tags".into()))
    );
}

#[test]
fn missing_required_attribute_is_reported_at_every_level() {
    let findings = check(
        r#"
resource "test_service" "this" {
  network {}
}
data "test_lookup" "x" {}"#,
    );
    assert_eq!(
        problems(&findings),
        vec![
            (
                "network".into(),
                Problem::MissingAttribute("subnets".into())
            ),
            (String::new(), Problem::MissingAttribute("name".into())),
            (String::new(), Problem::MissingAttribute("name".into())),
        ]
    );
    assert_eq!(findings[2].address, "data.test_lookup.x");
}

#[test]
fn missing_required_block_is_reported() {
    let findings = check(
        r#"
resource "test_service" "this" {
  name = "svc"
  network { subnets = [] }
  connect {
    enabled = true
    service {
      port_name = "grpc"
      tls { role_arn = "r" }
    }
  }
}"#,
    );
    assert_eq!(
        problems(&findings),
        one(
            "connect.service.tls",
            Problem::MissingBlock("issuer".into())
        )
    );
}

#[test]
fn read_only_attribute_and_repeated_single_block_are_reported() {
    let findings = check(
        r#"
resource "test_service" "this" {
  name = "svc"
  arn  = "x"
  network { subnets = [] }
  network { subnets = [] }
}"#,
    );
    assert_eq!(
        problems(&findings),
        vec![
            (String::new(), Problem::ReadOnlyAttribute("arn".into())),
            (String::new(), Problem::TooManyBlocks("network".into())),
        ]
    );
}

#[test]
fn dynamic_content_is_checked_against_the_generated_block() {
    let findings = check(
        r#"
resource "test_service" "this" {
  name = "svc"
  dynamic "network" {
    for_each = [1]
    content { subnet = [] }
  }
  connect {
    enabled = true
    dynamic "service" {
      for_each = var.services
      iterator = s
      content {
        port_name = s.value
        dynamic "tls" {
          for_each = var.tls ? [1] : []
          content {
            issuer { arm = "typo" }
          }
        }
      }
    }
  }
}"#,
    );
    // A dynamic "network" satisfies the required block; its content is still checked.
    assert_eq!(
        problems(&findings),
        vec![
            ("network".into(), Problem::UnknownAttribute("subnet".into())),
            (
                "network".into(),
                Problem::MissingAttribute("subnets".into())
            ),
            (
                "connect.service.tls.issuer".into(),
                Problem::UnknownAttribute("arm".into())
            ),
            (
                "connect.service.tls.issuer".into(),
                Problem::MissingAttribute("arn".into())
            ),
        ]
    );
}

#[test]
fn malformed_or_unknown_dynamic_blocks_are_reported() {
    let findings = check(
        r#"
resource "test_service" "this" {
  name = "svc"
  network { subnets = [] }
  dynamic "listener" {
    for_each = [1]
    content {}
  }
  dynamic "tags" {
    for_each = [1]
    content {}
  }
  dynamic "connect" {
    content { enabled = true }
  }
}"#,
    );
    assert_eq!(
        problems(&findings),
        vec![
            (String::new(), Problem::UnknownBlock("listener".into())),
            (String::new(), Problem::AttributeAsBlock("tags".into())),
            (
                String::new(),
                Problem::Malformed("dynamic \"connect\": missing for_each".into())
            ),
        ]
    );
}

#[test]
fn unknown_types_are_reported() {
    let findings = check(
        r#"
resource "test_servise" "this" {}
data "test_service" "x" {}"#,
    );
    assert_eq!(
        problems(&findings),
        vec![
            (String::new(), Problem::UnknownType),
            (String::new(), Problem::UnknownType)
        ]
    );
    assert_eq!(findings[0].address, "test_servise.this");
    assert_eq!(findings[1].address, "data.test_service.x");
    assert!(
        findings[0].to_string().contains("regenerate"),
        "{}",
        findings[0]
    );
}

#[test]
fn unparsable_file_is_reported() {
    let findings = check("resource \"test_service\" \"x\" {");
    assert!(
        matches!(
            findings[..],
            [Finding {
                problem: Problem::Parse(_),
                ..
            }]
        ),
        "{findings:?}"
    );
}

/// The committed aws schema knows Service Connect TLS as the provider does.
#[test]
fn committed_aws_schema_catches_service_connect_tls_mistakes() {
    let schema = committed_schema();
    let aws = schema
        .providers
        .iter()
        .find(|p| p.provider.ends_with("hashicorp/aws"))
        .expect("aws.json");
    if !aws.resources.contains_key("aws_ecs_service") {
        eprintln!("skipped: IaC/ uses no aws_ecs_service, so the committed schema lacks it");
        return;
    }
    let hcl = r#"
resource "aws_ecs_service" "this" {
  name = "svc"
  service_connect_configuration {
    enabled = true
    service {
      port_name = "grpc"
      tls {
        issuer   = "arn"
        role_arn = "arn"
      }
    }
  }
}"#;
    let findings: Vec<String> = check_source("IaC/file.tf", hcl, &schema)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        findings,
        [
            r#"IaC/file.tf: aws_ecs_service.this: service_connect_configuration.service.tls: unknown attribute "issuer""#,
            r#"IaC/file.tf: aws_ecs_service.this: service_connect_configuration.service.tls: missing required block "issuer_cert_authority""#,
        ]
    );
}

fn real_iac() -> Vec<(String, Body)> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(iac_dir())
        .expect("IaC/")
        .map(|e| e.expect("IaC/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    entries.sort();
    for path in entries {
        let name = format!(
            "IaC/{}",
            path.file_name().expect("file name").to_string_lossy()
        );
        let text = std::fs::read_to_string(&path).expect("read .tf");
        let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        files.push((name, body));
    }
    files
}

/// The real check: every resource and data block in IaC/*.tf matches the
/// provider schema (and every type used is in the committed schema).
#[test]
fn real_iac_matches_the_provider_schema() {
    let schema = committed_schema();
    for p in &schema.providers {
        eprintln!(
            "schema: {} {} from {}@{}",
            p.provider, p.provider_version, p.package, p.package_version
        );
    }
    let findings = check_dir(&iac_dir(), &schema).expect("read IaC/");
    let report: Vec<String> = findings.iter().map(ToString::to_string).collect();
    assert!(
        findings.is_empty(),
        "{} schema findings in IaC/:\n{}",
        findings.len(),
        report.join("\n")
    );
}

/// Deliberately broken copies of the real IaC: in every resource and data
/// block, an invented attribute is added (at the top and in its first nested
/// block) and every required top-level attribute is removed; the check must
/// report exactly those on top of what it reports for the real file.
#[test]
fn broken_copies_of_the_real_iac_fail() {
    let schema = committed_schema();
    let real = real_iac();
    let invented = || Structure::from(Attribute::new("not_a_real_argument", Expression::Null));
    let mut broken_blocks = 0;
    for (file, body) in &real {
        let baseline = problems(&check_body(file, body, &schema));
        for index in 0..body.0.len() {
            let mut broken = body.clone();
            let Some(Structure::Block(block)) = broken.0.get_mut(index) else {
                continue;
            };
            let type_name = block
                .labels
                .first()
                .map(|l| l.as_str().to_owned())
                .unwrap_or_default();
            let type_schema =
                schema
                    .providers
                    .iter()
                    .find_map(|p| match block.identifier.as_str() {
                        "resource" => p.resources.get(&type_name),
                        "data" => p.data_sources.get(&type_name),
                        _ => None,
                    });
            // Other top-level blocks, and unknown types (already one finding each).
            let Some(type_schema) = type_schema else {
                continue;
            };
            broken_blocks += 1;
            let unknown = || Problem::UnknownAttribute("not_a_real_argument".into());
            let mut expected = vec![(String::new(), unknown())];
            block.body.0.retain(|s| match s {
                Structure::Attribute(a)
                    if type_schema
                        .attributes
                        .get(a.key.as_str())
                        .is_some_and(|a| a.required) =>
                {
                    expected.push((String::new(), Problem::MissingAttribute(a.key.to_string())));
                    false
                }
                _ => true,
            });
            block.body.0.push(invented());
            let nested = block.body.0.iter_mut().find_map(|s| match s {
                Structure::Block(b)
                    if type_schema
                        .blocks
                        .get(b.identifier.as_str())
                        .is_some_and(|n| !n.unchecked) =>
                {
                    Some(b)
                }
                _ => None,
            });
            if let Some(nested) = nested {
                expected.push((nested.identifier.to_string(), unknown()));
                nested.body.0.push(invented());
            }
            let mut new = problems(&check_body(file, &broken, &schema));
            for old in &baseline {
                if let Some(i) = new.iter().position(|n| n == old) {
                    new.remove(i);
                }
            }
            let key = |(path, problem): &(String, Problem)| format!("{path} {problem:?}");
            new.sort_by_key(key);
            expected.sort_by_key(key);
            assert_eq!(
                new, expected,
                "{file}: broken copy of top-level block #{index}"
            );
        }
    }
    eprintln!(
        "broke {broken_blocks} resource/data blocks in {} files",
        real.len()
    );
}
