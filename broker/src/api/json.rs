//! Request bodies and query strings: JSON only, size-bounded, and rejected with a message that
//! names the field at fault but never echoes a submitted value (it may be a secret).

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move { parse(json, read(body).await?).map(JsonBody) })
    }
}

/// Like [`JsonBody`], but an empty body means `T::default()` (e.g. `POST …/renew` with no
/// options).
#[derive(Debug)]
pub struct JsonBodyOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for JsonBodyOrEmpty<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = read(body).await?;
            if bytes.is_empty() {
                return Ok(Self(T::default()));
            }
            parse(json, bytes).map(JsonBodyOrEmpty)
        })
    }
}

async fn read(
    body: impl Future<Output = Result<web::Bytes, actix_web::Error>>,
) -> Result<web::Bytes, ApiError> {
    body.await.map_err(|e| {
        if e.as_response_error().status_code().as_u16() == 413 {
            ApiError::PayloadTooLarge("the request body is larger than the broker accepts".into())
        } else {
            ApiError::bad_request("body", "the request body could not be read")
        }
    })
}

fn parse<T: DeserializeOwned>(json: bool, bytes: web::Bytes) -> Result<T, ApiError> {
    if !json {
        return Err(ApiError::UnsupportedMediaType(
            "the request body must be JSON: send `Content-Type: application/json`".into(),
        ));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|e| rejection(&e, &bytes))
}

/// The 400 for a body that does not deserialize, naming the field when there is one.
fn rejection(error: &serde_path_to_error::Error<serde_json::Error>, body: &[u8]) -> ApiError {
    let message = if names_expected(error.inner(), body) {
        "invalid type, expected one of the documented names (a string)".to_owned()
    } else {
        describe(error.inner())
    };
    let path = error.path().to_string();
    // An unknown field's path is the caller's own key, which may be anything: never echo it.
    let field = if message.starts_with("unknown field") {
        None
    } else if path == "." || path == "?" {
        message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    } else {
        Some(path)
    };
    match field {
        Some(field) => ApiError::BadRequest {
            message: format!("{field}: {message}"),
            field: Some(field),
        },
        None => ApiError::BadRequest {
            field: None,
            message: format!("malformed JSON body: {message}"),
        },
    }
}

/// Whether serde_json's bare "expected value" means a well-formed value of the wrong kind where
/// one of a fixed set of names (an enum) is expected, rather than a body that stops being JSON
/// there: the byte it points at starts a number, array, object or literal.
fn names_expected(error: &serde_json::Error, body: &[u8]) -> bool {
    if error.to_string().split(" at line ").next() != Some("expected value") {
        return false;
    }
    let line_start = body
        .split_inclusive(|&b| b == b'\n')
        .take(error.line().saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    let at = line_start + error.column().saturating_sub(1);
    body.get(at)
        .is_some_and(|b| b"-0123456789[{tfn".contains(b))
}

/// serde's message without the offending value, and with what was expected in JSON's terms
/// rather than Rust's: `invalid type: string "…", expected u16` becomes `invalid type, expected
/// a whole number from 0 to 65535`.
pub fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    describe_text(
        text.rsplit_once(" at line ")
            .map_or(&text, |(head, _)| head),
    )
}

/// [`describe`] for serde's message without its position.
fn describe_text(text: &str) -> String {
    // The last ", expected " is serde's own: an unknown key or variant before it is the
    // caller's text and may contain those words too.
    let expected = text
        .rsplit_once(", expected ")
        .map(|(_, e)| in_json_terms(e));
    if text.starts_with("invalid type") {
        format!("invalid type, expected {}", expected.unwrap_or_default())
    } else if text.starts_with("invalid value") {
        format!("invalid value, expected {}", expected.unwrap_or_default())
    } else if text.starts_with("unknown variant") {
        format!(
            "unknown value, expected one of {}",
            expected.unwrap_or_default()
        )
        .replace("one of one of", "one of")
    } else if text.starts_with("unknown field") {
        // The unknown name is the caller's text and may be anything, a secret included.
        match expected {
            Some(expected) => format!("unknown field, expected {expected}"),
            None => "unknown field".to_owned(),
        }
    } else if text.starts_with("invalid length") {
        format!("invalid length, expected {}", expected.unwrap_or_default())
    } else {
        text.to_owned()
    }
}

/// What serde says a field expected, as a JSON value an operator can write: Rust's integer
/// types become their ranges, a struct (whose name is internal) an object.
fn in_json_terms(expected: &str) -> String {
    let plain = match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a sequence" => "a JSON array",
        "a map" => "a JSON object",
        _ if expected.starts_with("struct ") => "a JSON object",
        _ => expected,
    };
    plain.to_owned()
}

/// A query string of type `T`. A value that does not parse is a 400 naming the parameter and
/// what it takes, never the value sent.
pub struct QueryParams<T>(pub T);

impl<T> QueryParams<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for QueryParams<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for QueryParams<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(QueryParams))
    }
}

fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let text = error.inner().to_string();
        let message = describe_query(&text);
        // A missing parameter is named by serde (one of ours); an unknown one's name is the
        // caller's text and is never echoed.
        let field = match error.path().to_string() {
            _ if message.starts_with("unknown field") => None,
            path if path == "." => ["missing field `", "duplicate field `"]
                .iter()
                .find_map(|prefix| text.strip_prefix(prefix))
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned),
            path => Some(path),
        };
        match field {
            Some(field) => ApiError::BadRequest {
                message: format!("{field}: {message}"),
                field: Some(field),
            },
            None => ApiError::bad_request("query", format!("query: {message}")),
        }
    })
}

/// What a query parameter takes, from the parser's complaint, with nothing of the value sent:
/// integers, booleans and names say what they expect; anything else points at the reference.
fn describe_query(text: &str) -> String {
    if text.starts_with("unknown variant") || text.starts_with("unknown field") {
        return describe_text(text);
    }
    let integer = ["invalid digit", "too large", "too small", "empty string"];
    if text.starts_with("missing field") {
        "missing, and required".to_owned()
    } else if text.starts_with("duplicate field") {
        "given more than once; send it once".to_owned()
    } else if integer.iter().any(|reason| text.contains(reason)) {
        "invalid value, expected a whole number".to_owned()
    } else if text.contains("`true` or `false`") {
        "invalid value, expected true or false".to_owned()
    } else if text.contains("UUID parsing failed") {
        "invalid value, expected a UUID".to_owned()
    } else if text.contains("input") {
        // chrono's complaints about a time: "input contains invalid characters", "premature end
        // of input", …
        "invalid value, expected an RFC 3339 time such as 2026-12-04T10:00:00Z".to_owned()
    } else {
        "invalid value; the API reference gives this parameter's form".to_owned()
    }
}

pub fn path_error(error: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    if !matches!(error, actix_web::error::PathError::Deserialize(_)) {
        return ApiError::bad_request("path", "the URL path is malformed").into();
    }
    ApiError::bad_request(
        "path",
        "a URL path segment has an invalid value (version numbers are integers, secret ids are UUIDs)",
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::{ApiError, describe, parse_query, rejection};

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        version: u64,
        status: Status,
    }

    #[derive(serde::Deserialize, Debug)]
    enum Status {
        #[serde(rename = "PENDING")]
        Pending,
    }

    #[test]
    fn messages_never_echo_values() {
        for (body, case) in [
            (
                r#"{"version":"CANARY-1","status":"PENDING"}"#,
                "string for number",
            ),
            (r#"{"version":1,"status":"CANARY-1"}"#, "unknown variant"),
            (r#"{"version":-1,"status":"PENDING"}"#, "negative"),
            (
                r#"{"version":1,"status":"PENDING","CANARY-2":1}"#,
                "unknown field",
            ),
            (
                r#"{"version":1,"status":"PENDING","a, expected CANARY-3":1}"#,
                "unknown field whose name reads like serde's words",
            ),
        ] {
            let err = serde_json::from_str::<Sample>(body).expect_err(case);
            let message = describe(&err);
            assert!(!message.contains("CANARY"), "case {case}: {message}");
            assert!(message.contains("expected"), "case {case}: {message}");
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Query {
        limit: Option<i64>,
        after: Option<uuid::Uuid>,
        since: Option<chrono::DateTime<chrono::Utc>>,
        wait: Option<bool>,
        status: Option<Status>,
    }

    fn query_rejection(query: &str) -> (Option<String>, String) {
        match parse_query::<Query>(query).expect_err(query) {
            ApiError::BadRequest { field, message } => (field, message),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn query_errors_name_the_parameter_and_what_it_takes() {
        for (query, field, message) in [
            (
                "limit=CANARY",
                "limit",
                "limit: invalid value, expected a whole number",
            ),
            (
                "limit=99999999999999999999",
                "limit",
                "limit: invalid value, expected a whole number",
            ),
            (
                "after=CANARY",
                "after",
                "after: invalid value, expected a UUID",
            ),
            (
                "wait=CANARY",
                "wait",
                "wait: invalid value, expected true or false",
            ),
            (
                "since=CANARY",
                "since",
                "since: invalid value, expected an RFC 3339 time such as 2026-12-04T10:00:00Z",
            ),
            (
                "status=CANARY",
                "status",
                "status: unknown value, expected one of `PENDING`",
            ),
            (
                "limit=5&CANARY=1",
                "query",
                "query: unknown field, expected one of",
            ),
            (
                "a,+expected+CANARY=1",
                "query",
                "query: unknown field, expected one of `limit`",
            ),
            ("limit=1&limit=2", "limit", "limit: given more than once"),
        ] {
            let (got_field, got_message) = query_rejection(query);
            assert_eq!(got_field.as_deref(), Some(field), "{query}");
            assert!(got_message.starts_with(message), "{query}: {got_message}");
            assert!(!got_message.contains("CANARY"), "{query}: {got_message}");
        }
        assert!(parse_query::<Query>("limit=5&wait=true&status=PENDING").is_ok());
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Required {
            kind: String,
        }
        match parse_query::<Required>("other=1").expect_err("missing") {
            ApiError::BadRequest { field, message } => {
                assert_eq!(field.as_deref(), Some("kind"));
                assert_eq!(message, "kind: missing, and required");
            }
            other => panic!("{other:?}"),
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Shapes {
        port: Option<u16>,
        count: Option<u32>,
        offset: Option<i64>,
        ratio: Option<f64>,
        enabled: Option<bool>,
        names: Option<Vec<String>>,
        labels: Option<std::collections::HashMap<String, String>>,
        inner: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Named {
        status: Status,
    }

    #[test]
    fn a_value_of_the_wrong_kind_for_a_name_is_told_apart_from_broken_json() {
        for (body, expected) in [
            (
                "{\"status\":5}",
                "status: invalid type, expected one of the documented names (a string)",
            ),
            (
                "{\n  \"status\": [1]\n}",
                "status: invalid type, expected one of the documented names (a string)",
            ),
            ("{\"status\": }", "status: expected value"),
            ("{\"status\": x}", "status: expected value"),
        ] {
            let deserializer = &mut serde_json::Deserializer::from_str(body);
            let error = serde_path_to_error::deserialize::<_, Named>(deserializer).expect_err(body);
            let ApiError::BadRequest { message, .. } = rejection(&error, body.as_bytes()) else {
                panic!("{body}: not a 400");
            };
            assert_eq!(message, expected, "{body}");
        }
    }

    #[test]
    fn messages_say_what_to_send_in_json_terms() {
        for (body, expected) in [
            (
                r#"{"port":"x"}"#,
                "invalid type, expected a whole number from 0 to 65535",
            ),
            (
                r#"{"port":70000}"#,
                "invalid value, expected a whole number from 0 to 65535",
            ),
            (
                r#"{"count":-1}"#,
                "invalid value, expected a whole number from 0 to 4294967295",
            ),
            (
                r#"{"count":1.5}"#,
                "invalid type, expected a whole number from 0 to 4294967295",
            ),
            (r#"{"offset":"x"}"#, "invalid type, expected a whole number"),
            (r#"{"ratio":"x"}"#, "invalid type, expected a number"),
            (
                r#"{"enabled":"yes"}"#,
                "invalid type, expected true or false",
            ),
            (r#"{"names":"a"}"#, "invalid type, expected a JSON array"),
            (r#"{"labels":[]}"#, "invalid type, expected a JSON object"),
            (r#"{"inner":5}"#, "invalid type, expected a JSON object"),
        ] {
            let err = serde_json::from_str::<Shapes>(body).expect_err(body);
            assert_eq!(describe(&err), expected, "{body}");
        }
    }
}
