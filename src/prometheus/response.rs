//! Decoding the answers of `/api/v1/query` and `/api/v1/query_range`, and turning an instant
//! result into an [`engine::Sample`](crate::engine::Sample).
//!
//! A sample is `[<unix seconds>, "<value>"]` on the wire. It is decoded straight into
//! `(f64, f64)` with a visitor that borrows the value string from the body, so a week of points
//! at a one-minute step (about ten thousand) costs no allocation per point.

use super::error::QueryFailure;
use crate::engine::Sample;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// A series' label set, `__name__` included when the result has one.
pub type Labels = BTreeMap<String, String>;

/// One series of an instant vector: its labels and one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Evaluation time, Unix seconds.
    pub time: f64,
    /// The value; may be NaN or infinite.
    pub value: f64,
}

/// One series of a range vector (matrix): its labels and its samples in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: Labels,
    /// `(unix seconds, value)` pairs; values may be NaN or infinite.
    pub points: Vec<(f64, f64)>,
}

/// The data of an instant query, by `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum InstantData {
    /// `scalar`: one number.
    Scalar {
        /// Evaluation time, Unix seconds.
        time: f64,
        /// The value; may be NaN or infinite.
        value: f64,
    },
    /// `vector`: one sample per series.
    Vector(Vec<InstantSeries>),
    /// `matrix`: an instant query of a range selector such as `up[5m]`.
    Matrix(Vec<RangeSeries>),
    /// `string`: a string literal query.
    String {
        /// Evaluation time, Unix seconds.
        time: f64,
        /// The string.
        value: String,
    },
}

/// The answer to an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantResult {
    /// The query that was sent.
    pub query: String,
    /// The result.
    pub data: InstantData,
    /// Warnings and infos that Prometheus attached to the answer (for example partial data).
    pub warnings: Vec<String>,
}

/// The answer to a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeResult {
    /// The query that was sent.
    pub query: String,
    /// One entry per series.
    pub series: Vec<RangeSeries>,
    /// Warnings and infos that Prometheus attached to the answer.
    pub warnings: Vec<String>,
}

impl InstantData {
    /// The `resultType` name of this data.
    pub fn result_type(&self) -> &'static str {
        match self {
            InstantData::Scalar { .. } => "scalar",
            InstantData::Vector(_) => "vector",
            InstantData::Matrix(_) => "matrix",
            InstantData::String { .. } => "string",
        }
    }
}

impl InstantResult {
    /// One value for the engine.
    ///
    /// - A scalar, or a vector of one series, gives its value.
    /// - An empty vector gives [`Sample::NoData`] ("empty result"), never zero.
    /// - NaN, +Inf and -Inf give [`Sample::NoData`] naming the value (and the series).
    /// - A vector of several series is an error naming their label sets, unless `sum` is true:
    ///   then the values are added (a NaN or infinite sum is no data).
    /// - A matrix or string result is an error.
    pub fn sample(&self, sum: bool) -> Result<Sample, QueryFailure> {
        match &self.data {
            InstantData::Scalar { value, .. } => Ok(checked(*value, || "scalar".to_string())),
            InstantData::Vector(series) => match series.as_slice() {
                [] => Ok(Sample::no_data("empty result: no series matched")),
                [one] => Ok(checked(one.value, || {
                    format!("series {}", labels_text(&one.labels))
                })),
                many if sum => {
                    let total: f64 = many.iter().map(|s| s.value).sum();
                    Ok(checked(total, || format!("sum of {} series", many.len())))
                }
                many => Err(QueryFailure::SeveralSeries {
                    labels: many.iter().map(|s| labels_text(&s.labels)).collect(),
                }),
            },
            other => Err(QueryFailure::ResultType {
                expected: "a scalar or an instant vector",
                got: other.result_type(),
            }),
        }
    }
}

fn checked(value: f64, what: impl FnOnce() -> String) -> Sample {
    if value.is_finite() {
        Sample::Value { value }
    } else {
        let shown = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        Sample::no_data(format!("value is {shown} ({})", what()))
    }
}

/// A label set as PromQL writes it: `name{a="x", b="y"}`, or `{}` when empty.
pub fn labels_text(labels: &Labels) -> String {
    let name = labels.get("__name__").map(String::as_str).unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    if rest.is_empty() && !name.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", rest.join(", "))
    }
}

/// Decodes the body of a successful `/api/v1/query` answer.
pub fn decode_instant(query: &str, body: &[u8]) -> Result<InstantResult, QueryFailure> {
    let (data, warnings) = decode(body)?;
    let data = match data {
        Data::Scalar(Point(time, value)) => InstantData::Scalar { time, value },
        Data::String(StringPoint(time, value)) => InstantData::String { time, value },
        Data::Vector(v) => InstantData::Vector(v),
        Data::Matrix(m) => InstantData::Matrix(m),
    };
    Ok(InstantResult {
        query: query.to_string(),
        data,
        warnings,
    })
}

/// Decodes the body of a successful `/api/v1/query_range` answer (always a matrix).
pub fn decode_range(query: &str, body: &[u8]) -> Result<RangeResult, QueryFailure> {
    let (data, warnings) = decode(body)?;
    match data {
        Data::Matrix(series) => Ok(RangeResult {
            query: query.to_string(),
            series,
            warnings,
        }),
        other => Err(QueryFailure::ResultType {
            expected: "a range vector (matrix)",
            got: other.result_type(),
        }),
    }
}

/// Prometheus's error answer (`{"status":"error","errorType":...,"error":...}`), if the body is
/// one.
pub(crate) fn decode_error(body: &[u8]) -> Option<(String, String)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorBody {
        status: String,
        #[serde(default)]
        error_type: String,
        #[serde(default)]
        error: String,
    }
    let e: ErrorBody = serde_json::from_slice(body).ok()?;
    (e.status == "error").then_some((e.error_type, e.error))
}

fn decode(body: &[u8]) -> Result<(Data, Vec<String>), QueryFailure> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| QueryFailure::Decode {
        message: format!("{e} (body starts with {:?})", snippet(body)),
    })?;
    if env.status != "success" {
        return Err(QueryFailure::Api {
            status: 200,
            error_type: env.error_type.unwrap_or_default(),
            error: env
                .error
                .unwrap_or_else(|| format!("status {:?}", env.status)),
        });
    }
    let data = env.data.ok_or_else(|| QueryFailure::Decode {
        message: "a successful answer without `data`".into(),
    })?;
    let mut warnings = env.warnings;
    warnings.extend(env.infos);
    Ok((data, warnings))
}

/// The start of a body, on one line, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let mut s = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.len() > SHOWN {
        s.push('…');
    }
    s
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Scalar(Point),
    String(StringPoint),
    Vector(Vec<InstantSeries>),
    Matrix(Vec<RangeSeries>),
}

impl Data {
    fn result_type(&self) -> &'static str {
        match self {
            Data::Scalar(_) => "scalar",
            Data::String(_) => "string",
            Data::Vector(_) => "vector",
            Data::Matrix(_) => "matrix",
        }
    }
}

impl<'de> Deserialize<'de> for InstantSeries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            metric: Labels,
            value: Option<Point>,
            histogram: Option<IgnoredAny>,
        }
        let raw = Raw::deserialize(d)?;
        match (raw.value, raw.histogram) {
            (Some(Point(time, value)), _) => Ok(InstantSeries {
                labels: raw.metric,
                time,
                value,
            }),
            (None, Some(_)) => Err(de::Error::custom(format!(
                "series {} holds a native histogram, which has no single value",
                labels_text(&raw.metric)
            ))),
            (None, None) => Err(de::Error::missing_field("value")),
        }
    }
}

impl<'de> Deserialize<'de> for RangeSeries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            metric: Labels,
            #[serde(default)]
            values: Points,
        }
        let raw = Raw::deserialize(d)?;
        Ok(RangeSeries {
            labels: raw.metric,
            points: raw.values.0,
        })
    }
}

/// `[<unix seconds>, "<value>"]`.
struct Point(f64, f64);

/// `[<unix seconds>, "<string>"]`.
struct StringPoint(f64, String);

/// A sequence of [`Point`]s, decoded without an intermediate value per point.
#[derive(Default)]
struct Points(Vec<(f64, f64)>);

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Point;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sample [<unix seconds>, \"<value>\"]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Point, A::Error> {
                let time: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let Value(value) = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Point(time, value))
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> Deserialize<'de> for StringPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (time, value) = <(f64, String)>::deserialize(d)?;
        Ok(StringPoint(time, value))
    }
}

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Points;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of samples")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Points, A::Error> {
                let mut points = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(Point(t, v)) = seq.next_element()? {
                    points.push((t, v));
                }
                Ok(Points(points))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A sample value: a string such as `"1.5"`, `"1e+06"`, `"NaN"`, `"+Inf"` or `"-Inf"`,
/// parsed without copying it out of the body.
struct Value(f64);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sample value as a string, such as \"1.5\" or \"NaN\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
                parse_value(s)
                    .map(Value)
                    .ok_or_else(|| E::custom(format!("invalid sample value {s:?}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(Value(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

/// Prometheus's value notation: Go's `strconv.FormatFloat(v, 'f', -1, 64)` plus `NaN`, `+Inf`
/// and `-Inf`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(body: &str) -> InstantResult {
        decode_instant("q", body.as_bytes()).unwrap()
    }

    #[test]
    fn scalar_vector_matrix_and_string() {
        let r = vector(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"2.5"]}}"#,
        );
        assert_eq!(
            r.data,
            InstantData::Scalar {
                time: 1700000000.5,
                value: 2.5
            }
        );
        let r = vector(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"__name__":"up","job":"a"},"value":[1700000000,"1"]},
                {"metric":{},"value":[1700000000,"1e+06"]}]},
               "warnings":["partial"],"infos":["info"]}"#,
        );
        let InstantData::Vector(v) = &r.data else {
            panic!("{r:?}")
        };
        assert_eq!(v[0].labels["job"], "a");
        assert_eq!(v[1].value, 1e6);
        assert_eq!(r.warnings, ["partial", "info"]);
        let r =
            vector(r#"{"status":"success","data":{"resultType":"string","result":[1,"hello"]}}"#);
        assert_eq!(r.data.result_type(), "string");
        let m = decode_range(
            "q",
            br#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"a":"b"},"values":[[1,"1"],[2,"NaN"],[3,"+Inf"],[4,"-Inf"]]}]}}"#,
        )
        .unwrap();
        let p = &m.series[0].points;
        assert_eq!(p.len(), 4);
        assert_eq!(p[0], (1.0, 1.0));
        assert!(p[1].1.is_nan());
        assert_eq!(p[2].1, f64::INFINITY);
        assert_eq!(p[3].1, f64::NEG_INFINITY);
    }

    #[test]
    fn range_wants_a_matrix() {
        let e = decode_range(
            "q",
            br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a range vector (matrix), got a vector result"
        );
    }

    #[test]
    fn malformed_answers_are_decode_errors() {
        for body in [
            "<html>proxy error</html>",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1]}]}}"#,
            r#"{"status":"success","data":{"resultType":"tensor","result":[]}}"#,
            r#"{"status":"success"}"#,
        ] {
            let e = decode_instant("q", body.as_bytes()).unwrap_err();
            assert!(matches!(e, QueryFailure::Decode { .. }), "{body}: {e:?}");
        }
        let e = decode_instant(
            "q",
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"histogram":[1,{}]}]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("native histogram"), "{e}");
    }

    #[test]
    fn error_bodies() {
        let b = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(
            decode_error(b),
            Some(("bad_data".to_string(), "parse error".to_string()))
        );
        assert_eq!(decode_error(b"Unauthorized"), None);
    }

    fn series(labels: &[(&str, &str)], value: f64) -> InstantSeries {
        InstantSeries {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time: 0.0,
            value,
        }
    }

    fn result(data: InstantData) -> InstantResult {
        InstantResult {
            query: "q".into(),
            data,
            warnings: vec![],
        }
    }

    #[test]
    fn samples_never_turn_missing_data_into_zero() {
        let empty = result(InstantData::Vector(vec![]));
        assert_eq!(
            empty.sample(true).unwrap(),
            Sample::no_data("empty result: no series matched")
        );
        let nan = result(InstantData::Vector(vec![series(
            &[("__name__", "x")],
            f64::NAN,
        )]));
        assert_eq!(
            nan.sample(false).unwrap(),
            Sample::no_data("value is NaN (series x)")
        );
        let inf = result(InstantData::Scalar {
            time: 0.0,
            value: f64::NEG_INFINITY,
        });
        assert_eq!(
            inf.sample(false).unwrap(),
            Sample::no_data("value is -Inf (scalar)")
        );
        let one = result(InstantData::Vector(vec![series(&[], 0.0)]));
        assert_eq!(one.sample(false).unwrap(), Sample::Value { value: 0.0 });
    }

    #[test]
    fn several_series_need_the_sum_option() {
        let two = result(InstantData::Vector(vec![
            series(&[("__name__", "req"), ("pod", "a")], 1.0),
            series(&[("__name__", "req"), ("pod", "b"), ("zone", "z")], 2.5),
        ]));
        let e = two.sample(false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 series returned where one was expected (aggregate them in the query, or ask to \
             sum them): req{pod=\"a\"}, req{pod=\"b\", zone=\"z\"}"
        );
        assert_eq!(two.sample(true).unwrap(), Sample::Value { value: 3.5 });
        let with_nan = result(InstantData::Vector(vec![
            series(&[("pod", "a")], 1.0),
            series(&[("pod", "b")], f64::NAN),
        ]));
        assert_eq!(
            with_nan.sample(true).unwrap(),
            Sample::no_data("value is NaN (sum of 2 series)")
        );
        let matrix = result(InstantData::Matrix(vec![]));
        assert!(matrix.sample(true).is_err());
    }

    #[test]
    fn label_text() {
        assert_eq!(labels_text(&Labels::new()), "{}");
        let l: Labels = [("a".to_string(), "x\"y".to_string())].into();
        assert_eq!(labels_text(&l), r#"{a="x\"y"}"#);
    }

    #[test]
    fn values_in_prometheus_notation() {
        assert_eq!(parse_value("1e+06"), Some(1e6));
        assert_eq!(parse_value("-0.25"), Some(-0.25));
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("one"), None);
    }
}
