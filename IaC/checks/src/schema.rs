//! Offline provider-schema check for `IaC/*.tf`.
//!
//! `terraform validate` needs the provider binaries, which cannot be
//! downloaded here. The schema subset for the types `IaC/` uses is instead
//! extracted from the prebuilt CDK provider packages on npm by
//! `schema/extract.mjs` and committed as `schema/<provider>.json`; this
//! module checks every `resource` and `data` block against it: unknown
//! names, blocks written as attributes and vice versa, read-only attributes,
//! missing required names and repeated single blocks, recursing into nested
//! blocks and into the `content` of `dynamic` blocks.
//!
//! It checks names and structure only, not types or values (`validate`
//! would also check those).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Structure};
use serde::Deserialize;

/// Arguments every resource and data block accepts besides its schema.
const META_ATTRIBUTES: &[&str] = &["count", "for_each", "depends_on", "provider"];
/// Blocks every resource and data block accepts besides its schema.
const META_BLOCKS: &[&str] = &["lifecycle", "provisioner", "connection"];

/// `IaC/checks/schema`: the committed schema files.
pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}

/// `IaC/`: the Terraform root module (this crate lives in `IaC/checks`).
pub fn iac_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One `schema/<provider>.json`, as written by `extract.mjs`.
#[derive(Debug, Deserialize)]
pub struct ProviderSchema {
    /// npm package the schema was extracted from, e.g. `@cdktn/provider-aws`.
    pub package: String,
    pub package_version: String,
    /// Terraform provider source address, e.g. `registry.terraform.io/hashicorp/aws`.
    pub provider: String,
    pub provider_version: String,
    #[serde(default)]
    pub resources: BTreeMap<String, BlockSchema>,
    #[serde(default)]
    pub data_sources: BTreeMap<String, BlockSchema>,
}

impl ProviderSchema {
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// The body of a resource, data source or nested block.
#[derive(Debug, Default, Deserialize)]
pub struct BlockSchema {
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeSchema>,
    #[serde(default)]
    pub blocks: BTreeMap<String, NestedBlockSchema>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AttributeSchema {
    #[serde(default)]
    pub required: bool,
    /// Set by the provider only: naming it in configuration is an error.
    #[serde(default)]
    pub computed_only: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct NestedBlockSchema {
    /// At least one such block must be present.
    #[serde(default)]
    pub required: bool,
    /// `Some(1)` for blocks that may appear at most once.
    #[serde(default)]
    pub max_items: Option<u32>,
    /// The provider declares an attribute of object type: Terraform accepts
    /// `name = ...` (and, for SDKv2 "attributes as blocks", `name { }` too),
    /// so both spellings pass.
    #[serde(default)]
    pub attribute_syntax: bool,
    /// Recursive struct cut off by the extractor: the content is not checked.
    #[serde(default)]
    pub unchecked: bool,
    #[serde(flatten)]
    pub schema: BlockSchema,
}

/// The committed schemas of all providers, merged.
#[derive(Debug, Default)]
pub struct Schema {
    pub providers: Vec<ProviderSchema>,
}

/// Why the committed schema could not be loaded.
#[derive(Debug)]
pub enum SchemaError {
    Io(PathBuf, std::io::Error),
    Json(PathBuf, serde_json::Error),
    Empty(PathBuf),
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Self::Json(p, e) => write!(f, "{}: invalid schema: {e}", p.display()),
            Self::Empty(p) => write!(f, "{}: no *.json schema files", p.display()),
        }
    }
}

impl std::error::Error for SchemaError {}

impl Schema {
    /// Loads every `*.json` in DIR (normally [`schema_dir`]).
    pub fn load_dir(dir: &Path) -> Result<Self, SchemaError> {
        let mut providers = Vec::new();
        for path in sorted_files(dir, "json").map_err(|e| SchemaError::Io(dir.into(), e))? {
            let text =
                std::fs::read_to_string(&path).map_err(|e| SchemaError::Io(path.clone(), e))?;
            providers
                .push(ProviderSchema::from_json(&text).map_err(|e| SchemaError::Json(path, e))?);
        }
        if providers.is_empty() {
            return Err(SchemaError::Empty(dir.into()));
        }
        Ok(Self { providers })
    }

    fn find(&self, kind: Kind, type_name: &str) -> Option<&BlockSchema> {
        self.providers.iter().find_map(|p| match kind {
            Kind::Resource => p.resources.get(type_name),
            Kind::Data => p.data_sources.get(type_name),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resource,
    Data,
}

/// What is wrong at one place in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file is not valid HCL.
    Parse(String),
    /// A structural error Terraform itself would reject (labels, `dynamic`).
    Malformed(String),
    /// The resource or data source type is not in the committed schema.
    UnknownType,
    UnknownAttribute(String),
    UnknownBlock(String),
    /// `name = ...` where the schema has a block `name { ... }`.
    BlockAsAttribute(String),
    /// `name { ... }` (or `dynamic "name"`) where the schema has an attribute.
    AttributeAsBlock(String),
    /// A computed-only attribute was set.
    ReadOnlyAttribute(String),
    MissingAttribute(String),
    MissingBlock(String),
    /// A block that allows one instance was written several times.
    TooManyBlocks(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse(e) => write!(f, "cannot parse: {e}"),
            Self::Malformed(e) => f.write_str(e),
            Self::UnknownType => write!(
                f,
                "type not in the committed schema IaC/checks/schema/*.json: regenerate it \
                 (node IaC/checks/schema/extract.mjs)"
            ),
            Self::UnknownAttribute(n) => write!(f, "unknown attribute {n:?}"),
            Self::UnknownBlock(n) => write!(f, "unknown block {n:?}"),
            Self::BlockAsAttribute(n) => write!(
                f,
                "{n:?} is a block: write `{n} {{ ... }}`, not `{n} = ...`"
            ),
            Self::AttributeAsBlock(n) => {
                write!(f, "{n:?} is an attribute: write `{n} = ...`, not a block")
            }
            Self::ReadOnlyAttribute(n) => write!(
                f,
                "attribute {n:?} is computed by the provider and cannot be set"
            ),
            Self::MissingAttribute(n) => write!(f, "missing required attribute {n:?}"),
            Self::MissingBlock(n) => write!(f, "missing required block {n:?}"),
            Self::TooManyBlocks(n) => write!(f, "block {n:?} may appear at most once"),
        }
    }
}

/// One problem, located by file, resource address and block path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// As shown to the user, e.g. `IaC/ecs.tf`.
    pub file: String,
    /// `aws_ecs_service.this` or `data.aws_iam_policy_document.x`; empty for parse errors.
    pub address: String,
    /// Nested block names from the resource down, e.g. `["service_connect_configuration", "service"]`.
    pub path: Vec<String>,
    pub problem: Problem,
}

impl fmt::Display for Finding {
    /// `IaC/ecs.tf: aws_ecs_service.this: service_connect_configuration.service.tls: unknown attribute "issuer"`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.address.is_empty() {
            write!(f, "{}: ", self.address)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path.join("."))?;
        }
        write!(f, "{}", self.problem)
    }
}

/// Checks every `*.tf` file directly in DIR; findings name files `<dir name>/<file>`.
pub fn check_dir(dir: &Path, schema: &Schema) -> std::io::Result<Vec<Finding>> {
    let prefix = std::fs::canonicalize(dir)?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut findings = Vec::new();
    for path in sorted_files(dir, "tf")? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let source = std::fs::read_to_string(&path)?;
        findings.extend(check_source(&format!("{prefix}/{name}"), &source, schema));
    }
    Ok(findings)
}

/// Parses SOURCE (one .tf file, shown as FILE) and checks it.
pub fn check_source(file: &str, source: &str, schema: &Schema) -> Vec<Finding> {
    match hcl::parse(source) {
        Ok(body) => check_body(file, &body, schema),
        Err(e) => vec![Finding {
            file: file.into(),
            address: String::new(),
            path: vec![],
            problem: Problem::Parse(e.to_string()),
        }],
    }
}

/// Checks the `resource` and `data` blocks of one parsed file; other
/// top-level blocks (variable, locals, output, module, ...) are not provider schema.
pub fn check_body(file: &str, body: &Body, schema: &Schema) -> Vec<Finding> {
    let mut findings = Vec::new();
    for block in body.blocks() {
        let kind = match block.identifier.as_str() {
            "resource" => Kind::Resource,
            "data" => Kind::Data,
            _ => continue,
        };
        let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
        let mut report = Reporter {
            file,
            address: String::new(),
            findings: &mut findings,
        };
        let [type_name, name] = labels[..] else {
            report.address = format!("{} {}", block.identifier.as_str(), labels.join("."));
            report.push(
                &[],
                Problem::Malformed("needs exactly two labels: a type and a name".into()),
            );
            continue;
        };
        report.address = match kind {
            Kind::Resource => format!("{type_name}.{name}"),
            Kind::Data => format!("data.{type_name}.{name}"),
        };
        match schema.find(kind, type_name) {
            Some(type_schema) => report.body(&block.body, type_schema, &mut Vec::new()),
            None => report.push(&[], Problem::UnknownType),
        }
    }
    findings
}

/// Walks one resource, collecting findings.
struct Reporter<'a> {
    file: &'a str,
    address: String,
    findings: &'a mut Vec<Finding>,
}

impl Reporter<'_> {
    fn push(&mut self, path: &[String], problem: Problem) {
        self.findings.push(Finding {
            file: self.file.into(),
            address: self.address.clone(),
            path: path.to_vec(),
            problem,
        });
    }

    /// Checks BODY against SCHEMA; PATH is empty at the resource's top level,
    /// the only level where meta-arguments are allowed.
    fn body(&mut self, body: &Body, schema: &BlockSchema, path: &mut Vec<String>) {
        let top = path.is_empty();
        let mut attributes = BTreeSet::new();
        // Block name -> literal instances; a name present with 0 came from a `dynamic`.
        let mut blocks: BTreeMap<&str, u32> = BTreeMap::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let name = attr.key.as_str();
                    if top && META_ATTRIBUTES.contains(&name) {
                        continue;
                    }
                    if let Some(a) = schema.attributes.get(name) {
                        attributes.insert(name);
                        if a.computed_only {
                            self.push(path, Problem::ReadOnlyAttribute(name.into()));
                        }
                    } else if let Some(b) = schema.blocks.get(name) {
                        if b.attribute_syntax {
                            blocks.entry(name).or_insert(0);
                        } else {
                            self.push(path, Problem::BlockAsAttribute(name.into()));
                        }
                    } else {
                        self.push(path, Problem::UnknownAttribute(name.into()));
                    }
                }
                Structure::Block(block) => {
                    let name = block.identifier.as_str();
                    if top && META_BLOCKS.contains(&name) {
                        continue;
                    }
                    if name == "dynamic" {
                        if let Some(generated) = self.dynamic(block, schema, path) {
                            blocks.entry(generated).or_insert(0);
                        }
                    } else if let Some(nested) = schema.blocks.get(name) {
                        *blocks.entry(name).or_insert(0) += 1;
                        self.nested(&block.body, name, nested, path);
                    } else if schema.attributes.contains_key(name) {
                        self.push(path, Problem::AttributeAsBlock(name.into()));
                    } else if !(top && name == "timeouts") {
                        // `timeouts` is accepted by Terraform even where the schema lacks it.
                        self.push(path, Problem::UnknownBlock(name.into()));
                    }
                }
            }
        }
        for (name, a) in &schema.attributes {
            if a.required && !attributes.contains(name.as_str()) {
                self.push(path, Problem::MissingAttribute(name.clone()));
            }
        }
        for (name, b) in &schema.blocks {
            let count = blocks.get(name.as_str()).copied();
            if b.required && count.is_none() {
                self.push(path, Problem::MissingBlock(name.clone()));
            }
            if let (Some(n), Some(max)) = (count, b.max_items)
                && n > max
            {
                self.push(path, Problem::TooManyBlocks(name.clone()));
            }
        }
    }

    fn nested(
        &mut self,
        body: &Body,
        name: &str,
        schema: &NestedBlockSchema,
        path: &mut Vec<String>,
    ) {
        if schema.unchecked {
            return;
        }
        path.push(name.into());
        self.body(body, &schema.schema, path);
        path.pop();
    }

    /// Checks `dynamic "NAME" { for_each = ..., iterator = ..., content { ... } }`
    /// and returns NAME if the schema has such a block.
    fn dynamic<'b>(
        &mut self,
        block: &'b Block,
        schema: &BlockSchema,
        path: &mut Vec<String>,
    ) -> Option<&'b str> {
        let [label] = &block.labels[..] else {
            self.push(
                path,
                Problem::Malformed(
                    "a dynamic block needs exactly one label: the block it generates".into(),
                ),
            );
            return None;
        };
        let name = label.as_str();
        let Some(nested) = schema.blocks.get(name) else {
            let problem = if schema.attributes.contains_key(name) {
                Problem::AttributeAsBlock(name.into())
            } else {
                Problem::UnknownBlock(name.into())
            };
            self.push(path, problem);
            return None;
        };
        let mut contents = 0;
        let mut for_each = false;
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(a) => match a.key.as_str() {
                    "for_each" => for_each = true,
                    "iterator" | "labels" => {}
                    other => self.push(
                        path,
                        Problem::Malformed(format!("dynamic {name:?}: unknown argument {other:?}")),
                    ),
                },
                Structure::Block(b) if b.identifier.as_str() == "content" => {
                    contents += 1;
                    self.nested(&b.body, name, nested, path);
                }
                Structure::Block(b) => self.push(
                    path,
                    Problem::Malformed(format!(
                        "dynamic {name:?}: unexpected block {:?}",
                        b.identifier.as_str()
                    )),
                ),
            }
        }
        if !for_each {
            self.push(
                path,
                Problem::Malformed(format!("dynamic {name:?}: missing for_each")),
            );
        }
        if contents != 1 {
            self.push(
                path,
                Problem::Malformed(format!("dynamic {name:?}: needs exactly one content block")),
            );
        }
        Some(name)
    }
}

/// Files in DIR (not recursive) ending in `.EXT`, sorted by name.
fn sorted_files(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == ext) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
