//! Reads the dashboard and alarms out of `IaC/*.tf` for the observability
//! test: every metric they name (namespace, metric, dimensions with their
//! values), the metric math they compute, and the alarms' settings, all
//! evaluated in the context of `context.rs`.

use hcl::{
    Body, Expression, Map, Value,
    eval::{Context, Evaluate},
};

use crate::eval::{Iac, attribute};

/// One metric a widget or an alarm reads. A dimension value is `None` when a
/// SEARCH only names the dimension.
#[derive(Debug, Clone)]
pub(crate) struct MetricUse {
    pub(crate) place: String,
    pub(crate) namespace: String,
    pub(crate) name: Option<String>,
    pub(crate) dimensions: Vec<(String, Option<String>)>,
}

impl MetricUse {
    pub(crate) fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A metric math expression and the ids it may refer to.
#[derive(Debug, Clone)]
pub(crate) struct MathUse {
    pub(crate) place: String,
    pub(crate) expression: String,
    pub(crate) ids: Vec<String>,
}

/// One alarm instance (one key of its `for_each`).
#[derive(Debug, Clone)]
pub(crate) struct Alarm {
    pub(crate) place: String,
    pub(crate) treat_missing_data: Option<Value>,
    pub(crate) alarm_actions: Option<Value>,
    pub(crate) ok_actions: Option<Value>,
}

/// What the dashboard and the alarms read.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    pub(crate) dashboard: Vec<MetricUse>,
    pub(crate) alarms: Vec<MetricUse>,
    pub(crate) math: Vec<MathUse>,
    pub(crate) alarm_settings: Vec<Alarm>,
    pub(crate) problems: Vec<String>,
}

/// Everything the dashboard and the alarms read, evaluated in `context`.
pub(crate) fn reads(iac: &Iac, context: &Context<'static>) -> Reads {
    let mut reads = Reads::default();
    for (name, body) in iac.resources("aws_cloudwatch_dashboard") {
        dashboard(
            &format!("aws_cloudwatch_dashboard.{name}"),
            body,
            context,
            &mut reads,
        );
    }
    for (name, body) in iac.resources("aws_cloudwatch_metric_alarm") {
        let place = format!("aws_cloudwatch_metric_alarm.{name}");
        let keys = match attribute(body, "for_each").map(|e| e.evaluate(context)) {
            Some(Ok(Value::Object(map))) => map.into_iter().collect::<Vec<_>>(),
            None => vec![(String::new(), Value::Null)],
            Some(other) => {
                reads
                    .problems
                    .push(format!("{place}: for_each is {other:?}"));
                continue;
            }
        };
        for (key, value) in keys {
            let mut each = Map::new();
            each.insert("key".to_owned(), Value::from(key.clone()));
            each.insert("value".to_owned(), value);
            let mut instance = context.clone();
            instance.declare_var("each", Value::Object(each));
            alarm(&format!("{place}[\"{key}\"]"), body, &instance, &mut reads);
        }
    }
    reads
}

fn dashboard(place: &str, body: &Body, context: &Context<'static>, reads: &mut Reads) {
    let body_json = match attribute(body, "dashboard_body") {
        Some(Expression::FuncCall(call)) if call.name.name.as_str() == "jsonencode" => {
            call.args.first().map(|arg| arg.evaluate(context))
        }
        _ => None,
    };
    let widgets = match body_json {
        Some(Ok(Value::Object(dashboard))) => match dashboard.get("widgets") {
            Some(Value::Array(widgets)) => widgets.clone(),
            other => {
                reads
                    .problems
                    .push(format!("{place}: widgets is {other:?}"));
                return;
            }
        },
        other => {
            reads.problems.push(format!(
                "{place}: dashboard_body is not jsonencode({{...}}) that evaluates: {other:?}"
            ));
            return;
        }
    };
    for widget in widgets {
        let properties = match &widget {
            Value::Object(w) if w.get("type") == Some(&Value::from("metric")) => {
                w.get("properties").cloned()
            }
            _ => continue,
        };
        let title = match properties.as_ref().and_then(|p| get(p, "title")) {
            Some(Value::String(t)) => t,
            _ => String::from("(untitled)"),
        };
        let place = format!("{place}: widget {title:?}");
        let Some(Value::Array(metrics)) = properties.as_ref().and_then(|p| get(p, "metrics"))
        else {
            reads.problems.push(format!("{place}: no metrics list"));
            continue;
        };
        let ids: Vec<String> = metrics
            .iter()
            .filter_map(|m| match m {
                Value::Array(items) => items.last().and_then(|o| get(o, "id")),
                _ => None,
            })
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect();
        for metric in metrics {
            widget_metric(&place, &metric, &ids, reads);
        }
    }
}

fn widget_metric(place: &str, metric: &Value, ids: &[String], reads: &mut Reads) {
    let Value::Array(items) = metric else {
        reads
            .problems
            .push(format!("{place}: a metric is not a list: {metric:?}"));
        return;
    };
    if let Some(expression) = items.first().and_then(|o| get(o, "expression")) {
        let expression = expression.as_str().unwrap_or_default().to_owned();
        if expression.contains("SEARCH(") {
            match search(place, &expression) {
                Ok(found) => reads.dashboard.push(found),
                Err(problem) => reads.problems.push(problem),
            }
        } else {
            reads.math.push(MathUse {
                place: place.to_owned(),
                expression,
                ids: ids.to_vec(),
            });
        }
        return;
    }
    let strings: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
    let options = items.len() - strings.len();
    if options > 1 || (options == 1 && !matches!(items.last(), Some(Value::Object(_)))) {
        reads.problems.push(format!(
            "{place}: {metric:?} is not [namespace, name, dimension, value, ..., {{options}}]"
        ));
        return;
    }
    match strings.as_slice() {
        [namespace, name, pairs @ ..] if pairs.len() % 2 == 0 && !strings.contains(&".") => {
            reads.dashboard.push(MetricUse {
                place: place.to_owned(),
                namespace: (*namespace).to_owned(),
                name: Some((*name).to_owned()),
                dimensions: pairs
                    .chunks(2)
                    .map(|pair| (pair[0].to_owned(), Some(pair[1].to_owned())))
                    .collect(),
            });
        }
        _ => reads.problems.push(format!(
            "{place}: {strings:?} is not namespace, name, dimension/value pairs written in full"
        )),
    }
}

/// `SEARCH('{Namespace,Dim,...} Dim="value" MetricName="name"', 'Stat', period)`.
fn search(place: &str, expression: &str) -> Result<MetricUse, String> {
    let schema =
        regex::Regex::new(r"SEARCH\('\s*\{([^}]*)\}([^']*)'").map_err(|e| e.to_string())?;
    let captures = schema.captures(expression).ok_or_else(|| {
        format!("{place}: SEARCH without a {{namespace,dimensions}} schema: {expression}")
    })?;
    let mut schema_parts = captures[1]
        .split(',')
        .map(|p| p.trim().trim_matches('"').to_owned());
    let namespace = schema_parts.next().unwrap_or_default();
    let terms = regex::Regex::new(r#"(\w+)="([^"]*)""#).map_err(|e| e.to_string())?;
    let mut name = None;
    let mut values = Map::new();
    for term in terms.captures_iter(&captures[2]) {
        if &term[1] == "MetricName" {
            name = Some(term[2].to_owned());
        } else {
            values.insert(term[1].to_owned(), term[2].to_owned());
        }
    }
    let dimensions: Vec<(String, Option<String>)> = schema_parts
        .map(|d| {
            let value = values.get(&d).cloned();
            (d, value)
        })
        .collect();
    if let Some(stray) = values
        .keys()
        .find(|k| !dimensions.iter().any(|(d, _)| d == *k))
    {
        return Err(format!(
            "{place}: SEARCH filters on {stray}, which its schema does not name"
        ));
    }
    Ok(MetricUse {
        place: place.to_owned(),
        namespace,
        name,
        dimensions,
    })
}

fn alarm(place: &str, body: &Body, context: &Context<'static>, reads: &mut Reads) {
    let eval = |key: &str| attribute(body, key).and_then(|e| e.evaluate(context).ok());
    reads.alarm_settings.push(Alarm {
        place: place.to_owned(),
        treat_missing_data: eval("treat_missing_data"),
        alarm_actions: eval("alarm_actions"),
        ok_actions: eval("ok_actions"),
    });
    if attribute(body, "metric_name").is_some() {
        match metric_of(place, body, context) {
            Ok(found) => reads.alarms.push(found),
            Err(problem) => reads.problems.push(problem),
        }
    }
    let mut ids = Vec::new();
    let mut expressions = Vec::new();
    for (query, query_context) in metric_queries(place, body, context, reads) {
        let id = attribute(&query, "id").and_then(|e| e.evaluate(&query_context).ok());
        ids.extend(id.and_then(|v| v.as_str().map(str::to_owned)));
        if let Some(Ok(Value::String(expression))) =
            attribute(&query, "expression").map(|e| e.evaluate(&query_context))
        {
            expressions.push(expression);
        }
        if let Some(metric) = query.blocks().find(|b| b.identifier() == "metric") {
            match metric_of(place, metric.body(), &query_context) {
                Ok(found) => reads.alarms.push(found),
                Err(problem) => reads.problems.push(problem),
            }
        }
    }
    for expression in expressions {
        reads.math.push(MathUse {
            place: place.to_owned(),
            expression,
            ids: ids.clone(),
        });
    }
}

/// The `metric_query` blocks, static and `dynamic`, each with the context
/// its content is evaluated in.
fn metric_queries(
    place: &str,
    body: &Body,
    context: &Context<'static>,
    reads: &mut Reads,
) -> Vec<(Body, Context<'static>)> {
    let mut queries = Vec::new();
    for block in body.blocks() {
        match block.identifier() {
            "metric_query" => queries.push((block.body().clone(), context.clone())),
            "dynamic"
                if block
                    .labels()
                    .first()
                    .is_some_and(|l| l.as_str() == "metric_query") =>
            {
                let iterator = attribute(block.body(), "iterator")
                    .and_then(|e| e.evaluate(context).ok())
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| String::from("metric_query"));
                let content = block.body().blocks().find(|b| b.identifier() == "content");
                let items = attribute(block.body(), "for_each").map(|e| e.evaluate(context));
                let (Some(content), Some(Ok(Value::Object(items)))) = (content, items) else {
                    reads
                        .problems
                        .push(format!("{place}: dynamic metric_query does not evaluate"));
                    continue;
                };
                for (key, value) in items {
                    let mut item = Map::new();
                    item.insert("key".to_owned(), Value::from(key));
                    item.insert("value".to_owned(), value);
                    let mut inner = context.clone();
                    inner.declare_var(iterator.clone(), Value::Object(item));
                    queries.push((content.body().clone(), inner));
                }
            }
            _ => {}
        }
    }
    queries
}

/// `namespace`, `metric_name` and `dimensions` of an alarm or of its
/// `metric_query.metric` block.
fn metric_of(place: &str, body: &Body, context: &Context<'static>) -> Result<MetricUse, String> {
    let eval = |key: &str| {
        attribute(body, key)
            .map(|e| e.evaluate(context))
            .transpose()
            .map_err(|e| format!("{place}: {key} does not evaluate: {e}"))
    };
    let namespace = eval("namespace")?;
    let name = eval("metric_name")?;
    let dimensions = match eval("dimensions")? {
        None => Vec::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_owned)))
            .collect(),
        Some(other) => return Err(format!("{place}: dimensions is {other:?}")),
    };
    match (namespace, name) {
        (Some(Value::String(namespace)), Some(Value::String(name))) => Ok(MetricUse {
            place: place.to_owned(),
            namespace,
            name: Some(name),
            dimensions,
        }),
        other => Err(format!("{place}: namespace and metric_name are {other:?}")),
    }
}

fn get(value: &Value, key: &str) -> Option<Value> {
    match value {
        Value::Object(map) => map.get(key).cloned(),
        _ => None,
    }
}
