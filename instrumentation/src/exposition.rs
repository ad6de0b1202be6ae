//! The Prometheus text (version 0.0.4) and OpenMetrics (1.0.0) exposition formats, parsed
//! and written: every service's `/metrics`, the aggregator's scrapes and its `/federate`.
//!
//! The parser reads what Prometheus client libraries write: `# HELP` and `# TYPE` lines,
//! other comments (ignored), and samples `name{label="value",...} value [timestamp]` with
//! escaped label values (`\\`, `\"`, `\n`), `NaN`, `+Inf` and `-Inf` values and optional
//! timestamps (milliseconds in the text format, seconds in OpenMetrics). Samples are grouped
//! into families: `_bucket`, `_count` and `_sum` samples belong to the histogram or summary
//! declared just before them; a sample whose family was never declared forms an `untyped`
//! family of its own. OpenMetrics adds exemplars after a sample (`# {labels} value
//! [timestamp]`), `# UNIT` lines, `unknown` for untyped, counters declared without their
//! `_total` suffix (kept here under the sample name, `foo_total`, as the text format names
//! them; their `_created` samples are dropped) and a closing `# EOF`.

/// The type of a metric family (`# TYPE` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Untyped,
            _ => return None,
        })
    }
}

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text, version 0.0.4: no exemplars.
    Text,
    /// OpenMetrics 1.0.0: exemplars on histogram buckets.
    OpenMetrics,
}

/// What a scrape asks for: OpenMetrics first (exemplars), the text format otherwise.
pub const SCRAPE_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format a response with this `Content-Type` is in.
    pub fn of_content_type(ct: Option<&str>) -> Format {
        match ct {
            Some(ct) if ct.trim_start().starts_with("application/openmetrics-text") => {
                Format::OpenMetrics
            }
            _ => Format::Text,
        }
    }

    /// The format to answer a request with `headers` in (its `Accept`, see [`Format::negotiate`]).
    pub fn accepted(headers: &http::HeaderMap) -> Format {
        Format::negotiate(
            headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        )
    }

    /// The format to answer a request with this `Accept` header in: OpenMetrics when the
    /// client lists it (Prometheus does, first) with a non-zero weight, the text format
    /// otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let om = accept.split(',').any(|part| {
            let mut params = part.split(';').map(str::trim);
            params.next() == Some("application/openmetrics-text")
                && !params.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        });
        if om {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// An exemplar (OpenMetrics): a traced observation attached to a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: Option<f64>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's own name (`foo_bucket` for a bucket of histogram `foo`).
    pub name: String,
    /// Labels in the order they were written, values unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds since the Unix epoch, when the exposition gave one.
    pub timestamp_ms: Option<i64>,
    /// OpenMetrics only.
    pub exemplar: Option<Exemplar>,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family: its metadata and samples, in exposition order.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    pub name: String,
    /// Unescaped help text.
    pub help: Option<String>,
    pub kind: MetricType,
    pub samples: Vec<Sample>,
}

/// A malformed exposition: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}
fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}
fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// True when `name` is a valid metric name.
pub fn valid_metric_name(name: &str) -> bool {
    let mut it = name.chars();
    matches!(it.next(), Some(c) if is_name_start(c)) && it.all(is_name_char)
}

/// Parse a sample value as the text format writes it (Go `ParseFloat` syntax plus `±Inf`).
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse::<f64>().ok(),
    }
}

/// Unescape `\\` and `\n` (HELP text; OpenMetrics also `\"`).
fn unescape_help(s: &str, om: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some('"') if om => out.push('"'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Families of a text (0.0.4) exposition, in order of first appearance.
pub fn parse(text: &str) -> Result<Vec<MetricFamily>, ParseError> {
    parse_as(text, Format::Text)
}

/// Families of an exposition in `format`, in order of first appearance.
pub fn parse_as(text: &str, format: Format) -> Result<Vec<MetricFamily>, ParseError> {
    let om = format == Format::OpenMetrics;
    let (mut families, lines) = parse_families(text, om)?;
    if om {
        // Counters under the name their samples and the text format use.
        for f in &mut families {
            if f.kind == MetricType::Counter && !f.name.ends_with("_total") {
                f.name.push_str("_total");
                let name = f.name.as_str();
                f.samples.retain(|s| s.name == name);
            }
        }
        // A family name appears once, also as OpenMetrics writes it (a counter without
        // `_total`): what is written from these families must parse.
        let om_name = |f: &MetricFamily| om_family_name(&f.name, f.kind).0.to_string();
        for (i, f) in families.iter().enumerate() {
            if let Some(g) = families[..i]
                .iter()
                .find(|g| g.name == f.name || om_name(g) == om_name(f))
            {
                return Err(ParseError {
                    line: lines[i],
                    message: format!(
                        "family {} has the name of family {} (a counter is {} without `_total`)",
                        f.name, g.name, f.name
                    ),
                });
            }
        }
    }
    Ok(families)
}

/// The families of `text`, and the line each one first appears on.
fn parse_families(text: &str, om: bool) -> Result<(Vec<MetricFamily>, Vec<usize>), ParseError> {
    let mut families: Vec<MetricFamily> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    // Index of the family that `# HELP`/`# TYPE` or the last sample opened.
    let mut current: Option<usize> = None;
    let find = |families: &Vec<MetricFamily>, name: &str| -> Option<usize> {
        families.iter().rposition(|f| f.name == name)
    };
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let err = |message: String| ParseError {
            line: lineno,
            message,
        };
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            let (keyword, rest) = split_word(rest);
            if om && keyword == "EOF" {
                break;
            }
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // an ordinary comment (OpenMetrics: `# UNIT`)
            }
            let (name, rest) = split_word(rest);
            if !valid_metric_name(name) {
                return Err(err(format!("invalid metric name {name:?} in # {keyword}")));
            }
            let idx = match find(&families, name) {
                Some(idx) => idx,
                None => {
                    families.push(MetricFamily {
                        name: name.to_string(),
                        help: None,
                        kind: MetricType::Untyped,
                        samples: Vec::new(),
                    });
                    lines.push(lineno);
                    families.len() - 1
                }
            };
            let fam = &mut families[idx];
            if keyword == "HELP" {
                if fam.help.is_some() {
                    return Err(err(format!("second HELP line for {name}")));
                }
                fam.help = Some(unescape_help(rest, om));
            } else {
                let t = rest.trim();
                let kind = match MetricType::parse(t) {
                    Some(k) => k,
                    // OpenMetrics' other types (unknown, info, stateset, gaugehistogram)
                    // federate as untyped series.
                    None if om && !t.is_empty() => MetricType::Untyped,
                    None => return Err(err(format!("unknown metric type {t:?} for {name}"))),
                };
                if !fam.samples.is_empty() {
                    return Err(err(format!("TYPE line for {name} after its samples")));
                }
                fam.kind = kind;
            }
            current = Some(idx);
            continue;
        }
        let sample = parse_sample(line, om).map_err(err)?;
        let idx = match current.filter(|&c| belongs(&families[c], &sample.name)) {
            Some(c) => c,
            None => match families.iter().rposition(|f| belongs(f, &sample.name)) {
                Some(c) => c,
                None => {
                    // Only a histogram's own name is a family that a sample of that name
                    // does not belong to: a second family of that name could not be written.
                    if find(&families, &sample.name).is_some() {
                        return Err(err(format!(
                            "sample {0} in histogram {0}, whose samples are {0}_bucket, {0}_sum and {0}_count",
                            sample.name
                        )));
                    }
                    lines.push(lineno);
                    families.push(MetricFamily {
                        name: sample.name.clone(),
                        help: None,
                        kind: MetricType::Untyped,
                        samples: Vec::new(),
                    });
                    families.len() - 1
                }
            },
        };
        current = Some(idx);
        families[idx].samples.push(sample);
    }
    Ok((families, lines))
}

/// True when a sample called `sample` is part of family `fam`.
fn belongs(fam: &MetricFamily, sample: &str) -> bool {
    if sample == fam.name {
        return fam.kind != MetricType::Histogram;
    }
    let Some(suffix) = sample.strip_prefix(fam.name.as_str()) else {
        return false;
    };
    match fam.kind {
        MetricType::Histogram => matches!(suffix, "_bucket" | "_count" | "_sum"),
        // OpenMetrics declares counter `foo` for samples `foo_total` (and `foo_created`).
        MetricType::Counter => matches!(suffix, "_total" | "_created"),
        MetricType::Summary => matches!(suffix, "_count" | "_sum"),
        _ => false,
    }
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], s[i..].trim_start_matches([' ', '\t'])),
        None => (s, ""),
    }
}

fn parse_sample(line: &str, om: bool) -> Result<Sample, String> {
    let mut chars = line.char_indices().peekable();
    let name_end = match chars.next() {
        Some((_, c)) if is_name_start(c) => {
            let mut end = line.len();
            for (i, c) in chars.by_ref() {
                if !is_name_char(c) {
                    end = i;
                    break;
                }
            }
            end
        }
        _ => return Err(format!("invalid sample line {line:?}")),
    };
    let name = &line[..name_end];
    let mut rest = line[name_end..].trim_start_matches([' ', '\t']);
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (ls, after) = parse_labels(after)?;
        labels = ls;
        rest = after.trim_start_matches([' ', '\t']);
    }
    let (value_s, rest) = split_word(rest);
    if value_s.is_empty() {
        return Err(format!("missing value for {name}"));
    }
    let value = parse_value(value_s).ok_or_else(|| format!("invalid value {value_s:?}"))?;
    let (mut timestamp_ms, mut exemplar) = (None, None);
    let mut rest = rest;
    if !rest.starts_with('#') {
        let (ts_s, after) = split_word(rest);
        if !ts_s.is_empty() {
            timestamp_ms = Some(if om {
                let secs = parse_value(ts_s)
                    .filter(|t| t.is_finite())
                    .ok_or_else(|| format!("invalid timestamp {ts_s:?}"))?;
                (secs * 1000.0).round() as i64
            } else {
                ts_s.parse::<i64>()
                    .map_err(|_| format!("invalid timestamp {ts_s:?}"))?
            });
        }
        rest = after;
    }
    if om && let Some(ex) = rest.strip_prefix('#') {
        exemplar = Some(parse_exemplar(ex.trim_start_matches([' ', '\t']))?);
        rest = "";
    }
    if !rest.is_empty() {
        return Err(format!("unexpected text after the sample: {rest:?}"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
        exemplar,
    })
}

/// `{labels} value [timestamp]` after a sample's `#`.
fn parse_exemplar(s: &str) -> Result<Exemplar, String> {
    let after = s
        .strip_prefix('{')
        .ok_or_else(|| format!("exemplar without labels: {s:?}"))?;
    let (labels, rest) = parse_labels(after)?;
    let (value_s, rest) = split_word(rest);
    let value =
        parse_value(value_s).ok_or_else(|| format!("invalid exemplar value {value_s:?}"))?;
    let (ts_s, rest) = split_word(rest);
    let timestamp = if ts_s.is_empty() {
        None
    } else {
        Some(parse_value(ts_s).ok_or_else(|| format!("invalid exemplar timestamp {ts_s:?}"))?)
    };
    if !rest.is_empty() {
        return Err(format!("unexpected text after the exemplar: {rest:?}"));
    }
    Ok(Exemplar {
        labels,
        value,
        timestamp,
    })
}

/// Labels after the opening `{`; returns them and the text after the closing `}`.
#[allow(clippy::type_complexity)]
fn parse_labels(s: &str) -> Result<(Vec<(String, String)>, &str), String> {
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let end = rest
            .char_indices()
            .find(|&(i, c)| {
                if i == 0 {
                    !is_label_start(c)
                } else {
                    !is_label_char(c)
                }
            })
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(format!("invalid label name at {rest:?}"));
        }
        let lname = &rest[..end];
        rest = rest[end..].trim_start_matches([' ', '\t']);
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("expected '=' after label {lname}"))?;
        rest = rest.trim_start_matches([' ', '\t']);
        rest = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("expected '\"' to open the value of label {lname}"))?;
        let mut value = String::new();
        let mut closed = None;
        let mut it = rest.char_indices();
        while let Some((i, c)) = it.next() {
            match c {
                '\\' => match it.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => break,
                },
                '"' => {
                    closed = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let close = closed.ok_or_else(|| format!("unterminated value of label {lname}"))?;
        if labels.iter().any(|(k, _)| k == lname) {
            return Err(format!("duplicate label {lname}"));
        }
        labels.push((lname.to_string(), value));
        rest = rest[close + 1..].trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {lname}"));
        }
    }
}

/// Escape a label value for the text format.
pub fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escape HELP text for the text format (OpenMetrics also escapes `"`).
pub fn escape_help(v: &str, out: &mut String) {
    escape_help_as(v, Format::Text, out)
}

fn escape_help_as(v: &str, format: Format, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Write the `# HELP` and `# TYPE` lines of family `name` (its text-format name: a counter's
/// ends with `_total`, which OpenMetrics leaves out of the family name; a counter without it
/// is written as `unknown` there).
pub fn write_header(
    out: &mut String,
    format: Format,
    name: &str,
    help: Option<&str>,
    kind: MetricType,
) {
    use std::fmt::Write;
    let (name, kind) = match format {
        Format::OpenMetrics => om_family_name(name, kind),
        Format::Text => (name, kind.as_str()),
    };
    if let Some(h) = help {
        let _ = write!(out, "# HELP {name} ");
        escape_help_as(h, format, out);
        out.push('\n');
    }
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The name and type OpenMetrics writes family `name` of `kind` under: a counter without
/// its `_total` (which `parse_as` adds back), unless the rest ends with `_total` too (it would
/// read back as that rest: the whole name is kept); a counter without `_total` as `unknown`.
fn om_family_name(name: &str, kind: MetricType) -> (&str, &'static str) {
    match kind {
        MetricType::Counter => match name.strip_suffix("_total") {
            Some(base) if !base.ends_with("_total") => (base, "counter"),
            Some(_) => (name, "counter"),
            None => (name, "unknown"),
        },
        MetricType::Untyped => (name, "unknown"),
        k => (name, k.as_str()),
    }
}

/// Write one sample: `name{labels} value [timestamp] [# exemplar]` (exemplars and second
/// timestamps in OpenMetrics only).
pub fn write_sample<'a>(
    out: &mut String,
    format: Format,
    name: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: Option<&Exemplar>,
) {
    use std::fmt::Write;
    out.push_str(name);
    write_labels(out, labels);
    out.push(' ');
    format_value(value, out);
    if let Some(ts) = timestamp_ms {
        match format {
            Format::Text => {
                let _ = write!(out, " {ts}");
            }
            Format::OpenMetrics => {
                out.push(' ');
                format_value(ts as f64 / 1000.0, out);
            }
        }
    }
    if let (Format::OpenMetrics, Some(ex)) = (format, exemplar) {
        out.push_str(" # ");
        let labels = ex.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if ex.labels.is_empty() {
            out.push_str("{}");
        } else {
            write_labels(out, labels);
        }
        out.push(' ');
        format_value(ex.value, out);
        if let Some(t) = ex.timestamp {
            out.push(' ');
            format_value(t, out);
        }
    }
    out.push('\n');
}

fn write_labels<'a>(out: &mut String, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut first = true;
    for (k, v) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(v, out);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

/// Write `families` in `format`, ended; a sample's exemplar is what `exemplar` gives for it.
pub fn write_families(
    out: &mut String,
    format: Format,
    families: &[MetricFamily],
    exemplar: impl Fn(&MetricFamily, &Sample) -> Option<Exemplar>,
) {
    for f in families {
        write_header(out, format, &f.name, f.help.as_deref(), f.kind);
        for s in &f.samples {
            let labels = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            let ex = exemplar(f, s);
            write_sample(
                out,
                format,
                &s.name,
                labels,
                s.value,
                s.timestamp_ms,
                ex.as_ref(),
            );
        }
    }
    write_end(out, format);
}

/// End an exposition (OpenMetrics' `# EOF`).
pub fn write_end(out: &mut String, format: Format) {
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
}

/// Format a value as Prometheus does (`+Inf`, `-Inf`, `NaN`, shortest round-trip decimal).
pub fn format_value(v: f64, out: &mut String) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP akidb_grpc_server_requests_total Finished gRPC calls served, by service.
# TYPE akidb_grpc_server_requests_total counter
akidb_grpc_server_requests_total{grpc_code="OK",grpc_method="Search",grpc_service="akidb.v1.QueryService"} 42
akidb_grpc_server_requests_total{grpc_code="INTERNAL",grpc_method="Search",grpc_service="akidb.v1.QueryService"} 3 1700000000000
# A free comment
# HELP lat Latency with a \\ backslash\nand a newline.
# TYPE lat histogram
lat_bucket{le="0.1"} 1
lat_bucket{le="+Inf"} 2
lat_sum 0.35
lat_count 2
# TYPE q summary
q{quantile="0.5"} NaN
q_sum 0
q_count 0
weird{path="a\"b\\c\nd", empty=""} -Inf
   spaced   {  a = "1" ,  }   +Inf   
no_labels 1.5e3
"#;

    #[test]
    fn parses_families_samples_and_escapes() {
        let fams = parse(TEXT).unwrap();
        let names: Vec<_> = fams.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "akidb_grpc_server_requests_total",
                "lat",
                "q",
                "weird",
                "spaced",
                "no_labels"
            ]
        );
        let req = &fams[0];
        assert_eq!(req.kind, MetricType::Counter);
        assert_eq!(
            req.help.as_deref(),
            Some("Finished gRPC calls served, by service.")
        );
        assert_eq!(req.samples.len(), 2);
        assert_eq!(req.samples[0].label("grpc_code"), Some("OK"));
        assert_eq!(req.samples[0].value, 42.0);
        assert_eq!(req.samples[0].timestamp_ms, None);
        assert_eq!(req.samples[1].timestamp_ms, Some(1_700_000_000_000));

        let lat = &fams[1];
        assert_eq!(lat.kind, MetricType::Histogram);
        assert_eq!(
            lat.help.as_deref(),
            Some("Latency with a \\ backslash\nand a newline.")
        );
        assert_eq!(lat.samples.len(), 4);
        assert_eq!(lat.samples[1].label("le"), Some("+Inf"));
        assert_eq!(lat.samples[3].name, "lat_count");

        let q = &fams[2];
        assert_eq!(q.kind, MetricType::Summary);
        assert!(q.samples[0].value.is_nan());
        assert_eq!(q.samples.len(), 3);

        let weird = &fams[3];
        assert_eq!(weird.kind, MetricType::Untyped);
        assert_eq!(weird.samples[0].label("path"), Some("a\"b\\c\nd"));
        assert_eq!(weird.samples[0].label("empty"), Some(""));
        assert_eq!(weird.samples[0].value, f64::NEG_INFINITY);

        assert_eq!(fams[4].samples[0].labels, vec![("a".into(), "1".into())]);
        assert_eq!(fams[4].samples[0].value, f64::INFINITY);
        assert_eq!(fams[5].samples[0].value, 1500.0);
    }

    #[test]
    fn parses_what_the_catalogue_renders() {
        let m = crate::metrics::Metrics::new(crate::metrics::Component::Storage);
        m.grpc_server_requests
            .with_label_values(&["akidb.v1.StorageService", "Search", "OK"])
            .inc_by(7);
        m.grpc_server_duration
            .with_label_values(&["akidb.v1.StorageService", "Search"])
            .observe(0.01);
        let text = String::from_utf8(m.render()).unwrap();
        let fams = parse(&text).unwrap();
        let h = fams
            .iter()
            .find(|f| f.name == "akidb_grpc_server_request_duration_seconds")
            .unwrap();
        assert_eq!(h.kind, MetricType::Histogram);
        assert_eq!(h.samples.len(), LATENCY_SAMPLES);
        let c = fams
            .iter()
            .find(|f| f.name == "akidb_grpc_server_requests_total")
            .unwrap();
        assert_eq!(c.samples[0].value, 7.0);
    }
    const LATENCY_SAMPLES: usize = crate::metrics::LATENCY_BUCKETS.len() + 3;

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "x{a=\"1\" 1",
            "x{a=1} 1",
            "x{a=\"1\",a=\"2\"} 1",
            "x abc",
            "x",
            "x 1 notatime",
            "x 1 2 3",
            "1x 1",
            "# TYPE x bogus",
            "x{=\"1\"} 1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        let e = parse("ok 1\nbad{").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn escapes_round_trip() {
        let mut s = String::new();
        escape_label_value("a\"b\\c\nd", &mut s);
        assert_eq!(s, r#"a\"b\\c\nd"#);
        let fams = parse(&format!("m{{l=\"{s}\"}} 1")).unwrap();
        assert_eq!(fams[0].samples[0].label("l"), Some("a\"b\\c\nd"));
        let mut v = String::new();
        format_value(0.1, &mut v);
        v.push(' ');
        format_value(f64::INFINITY, &mut v);
        v.push(' ');
        format_value(3.0, &mut v);
        assert_eq!(v, "0.1 +Inf 3");
    }
    #[test]
    fn parses_openmetrics_with_exemplars() {
        let om = "# TYPE akidb_calls counter\n\
                  # HELP akidb_calls Calls \\\"served\\\".\n\
                  # UNIT akidb_calls calls\n\
                  akidb_calls_total{m=\"a\"} 3 1700000000.5\n\
                  akidb_calls_created{m=\"a\"} 1600000000\n\
                  # TYPE lat_seconds histogram\n\
                  lat_seconds_bucket{le=\"0.1\"} 2 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.042 1700000001.25\n\
                  lat_seconds_bucket{le=\"+Inf\"} 3 # {} 7\n\
                  lat_seconds_sum 7.1\n\
                  lat_seconds_count 3\n\
                  # TYPE thing unknown\n\
                  thing 1\n\
                  # EOF\n\
                  ignored after EOF {\n";
        let fams = parse_as(om, Format::OpenMetrics).unwrap();
        let names: Vec<&str> = fams.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["akidb_calls_total", "lat_seconds", "thing"]);
        let c = &fams[0];
        assert_eq!(c.kind, MetricType::Counter);
        assert_eq!(c.help.as_deref(), Some("Calls \"served\"."));
        assert_eq!(c.samples.len(), 1, "_created dropped");
        assert_eq!(c.samples[0].timestamp_ms, Some(1_700_000_000_500));
        let b = &fams[1].samples[0];
        let e = b.exemplar.as_ref().unwrap();
        assert_eq!(
            e.labels,
            vec![("trace_id".into(), "4bf92f3577b34da6a3ce929d0e0e4736".into())]
        );
        assert_eq!((e.value, e.timestamp), (0.042, Some(1_700_000_001.25)));
        let inf = fams[1].samples[1].exemplar.as_ref().unwrap();
        assert_eq!((inf.labels.len(), inf.value, inf.timestamp), (0, 7.0, None));
        assert_eq!(fams[2].kind, MetricType::Untyped);
        // The text format has no exemplars, and keeps integer millisecond timestamps.
        assert!(parse("x 1 # {a=\"b\"} 1").is_err());
        assert!(parse("x 1 1.5").is_err());
        assert!(parse_as("x 1 # {a=\"b\"} 1 2 3\n# EOF\n", Format::OpenMetrics).is_err());
    }

    #[test]
    fn rejects_malformed_openmetrics() {
        for bad in [
            "x 1 # 5",
            "x 1 # {a=\"b\"}",
            "x 1 # {a=\"b\"} zz",
            "x 1 # {a=\"b\"} 1 t",
            "x 1 # {a=\"b\" 1",
            "x 1 abc",
            "x 1 +Inf",
        ] {
            assert!(
                parse_as(&format!("{bad}\n# EOF\n"), Format::OpenMetrics).is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn openmetrics_written_reads_back() {
        let fams = parse_as(
            "# TYPE a counter\n# HELP a A \\\"q\\\".\na_total{k=\"v\\\"\"} 2\n\
             # TYPE h histogram\nh_bucket{le=\"1\"} 1 # {trace_id=\"ab\"} 0.5 12.5\n\
             h_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n# TYPE u unknown\nu 4 5\n# EOF\n",
            Format::OpenMetrics,
        )
        .unwrap();
        let mut out = String::new();
        write_families(&mut out, Format::OpenMetrics, &fams, |_, s| {
            s.exemplar.clone()
        });
        assert_eq!(
            out,
            "# HELP a A \\\"q\\\".\n# TYPE a counter\na_total{k=\"v\\\"\"} 2\n\
             # TYPE h histogram\nh_bucket{le=\"1\"} 1 # {trace_id=\"ab\"} 0.5 12.5\n\
             h_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n# TYPE u unknown\nu 4 5\n# EOF\n"
        );
        assert_eq!(parse_as(&out, Format::OpenMetrics).unwrap(), fams);
        // The same families in the text format: counters keep `_total`, no exemplars.
        let mut text = String::new();
        write_header(
            &mut text,
            Format::Text,
            "a_total",
            Some("A."),
            MetricType::Counter,
        );
        write_sample(
            &mut text,
            Format::Text,
            "h_bucket",
            [("le", "1")],
            1.0,
            Some(5),
            fams[1].samples[0].exemplar.as_ref(),
        );
        assert_eq!(
            text,
            "# HELP a_total A.\n# TYPE a_total counter\nh_bucket{le=\"1\"} 1 5\n"
        );
    }

    /// Found by the `exposition` fuzz target: a sample named like a histogram declared
    /// before it (`h{le="2"} 0` after `# TYPE h histogram`) opened a second family `h`, and
    /// what `/federate` writes from such families does not parse ("TYPE line for h after its
    /// samples"), for the aggregator or Prometheus. Refused now, in both formats; so is an
    /// OpenMetrics counter whose `_total` name another family already has.
    #[test]
    fn no_two_families_share_a_name() {
        let input =
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\nh{le=\"2\"} 0\n";
        for format in [Format::Text, Format::OpenMetrics] {
            let e = parse_as(input, format).unwrap_err();
            assert_eq!(e.line, 5, "{e}");
            assert!(e.message.contains("histogram h"), "{e}");
        }
        let om = "c_total 1\n# TYPE c counter\nc_total 2\n# EOF\n";
        let e = parse_as(om, Format::OpenMetrics).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        // Found next: counter `p_total` (declared with its sample name) and family `p` are
        // both `p` in OpenMetrics.
        let om = "# TYPE p_total counter\np_total 1\n# HELP p P.\n# TYPE p gauge\np 2\n# EOF\n";
        assert_eq!(parse_as(om, Format::OpenMetrics).unwrap_err().line, 3);
        let om = "c_total 1\n# TYPE c counter\nc_total 2\n# EOF\n";
        // The text format reads the same lines as two families of different names.
        assert_eq!(parse(om).unwrap().len(), 2);
        // A family and its own samples are still one family.
        let ok = "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\nh_total 3\n";
        assert_eq!(parse(ok).unwrap().len(), 2);
    }

    /// Found by the `exposition` fuzz target: an OpenMetrics counter declared as
    /// `c_total_total` was written as `c_total`, which reads back as family `c_total`.
    #[test]
    fn counter_whose_base_ends_with_total_reads_back() {
        let om = "# TYPE c_total_total counter\nc_total_total 1\n# EOF\n";
        let fams = parse_as(om, Format::OpenMetrics).unwrap();
        assert_eq!(fams[0].name, "c_total_total");
        let mut out = String::new();
        write_families(&mut out, Format::OpenMetrics, &fams, |_, _| None);
        assert_eq!(out, om);
        assert_eq!(parse_as(&out, Format::OpenMetrics).unwrap(), fams);
    }

    #[test]
    fn negotiates_the_format() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(Format::negotiate(Some(SCRAPE_ACCEPT)), Format::OpenMetrics);
        // What Prometheus 2.x sends.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                    version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
            Format::Text
        );
        assert_eq!(
            Format::of_content_type(Some(Format::OpenMetrics.content_type())),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::of_content_type(Some("text/plain; version=0.0.4")),
            Format::Text
        );
    }
}
