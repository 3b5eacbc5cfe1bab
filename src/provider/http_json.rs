//! `kind = "http"`: any JSON endpoint. The request body is a tera template, the answer and the
//! token counts are read from the response with JSON pointers, and secrets come into headers
//! from the environment as `${VAR}`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;

use super::http::{retry_after, status_error};
use super::{CallError, Completion, ErrorKind, Provider, Request, Usage};
use crate::config::{HttpOptions, ProviderConfig};
use crate::error::{Error, Location, Problem};
use crate::prompt::{TemplateError, add_text_template};

const MAX_BODY_BYTES: usize = 16 << 20;

/// What a body template may use.
pub const VARIABLES: &[&str] = &[
    "prompt",
    "system",
    "question",
    "context",
    "contexts",
    "model",
    "temperature",
    "max_tokens",
    "seed",
];

pub struct HttpJson {
    http: reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<BodyTemplate>,
    answer: String,
    tokens: Option<(String, String)>,
    model: String,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    seed: Option<u64>,
}

/// The checks of `kind = "http"`: the whole endpoint is the `[http]` table, so `base_url` and
/// `api_key_env` have no use here.
pub(super) fn check(path: &Path, cfg: &ProviderConfig) -> Vec<Problem> {
    let at = |field: &str| Location::file(path).field(field);
    let mut problems = super::kinds::unused_endpoint_keys(
        path,
        cfg,
        "remove base_url and write the full endpoint as url in the [http] table",
        "remove api_key_env and send the key in a header: [http.headers] Authorization = \"Bearer ${MY_KEY}\"",
    );
    match &cfg.http {
        None => problems.push(
            Problem::new(at("http"), "kind = \"http\" needs an [http] table").fix(
                "add [http] with url = \"https://…\", body = '{\"q\": {{ prompt | json }}}' and answer = \"/answer\"",
            ),
        ),
        Some(h) => check_table(h, &at, &mut problems),
    }
    problems
}

fn check_table(h: &HttpOptions, at: &dyn Fn(&str) -> Location, problems: &mut Vec<Problem>) {
    if let Some(problem) = crate::config::http_url_problem(&h.url) {
        problems.push(
            Problem::new(at("http.url"), problem)
                .fix("write the full endpoint, e.g. url = \"http://127.0.0.1:8080/generate\""),
        );
    }
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    if !METHODS.contains(&h.method.to_ascii_uppercase().as_str()) {
        problems.push(
            Problem::new(
                at("http.method"),
                format!("`{}` is not an HTTP method goldgate sends", h.method),
            )
            .fix("use POST (the default), GET, PUT, PATCH or DELETE"),
        );
    }
    for (field, pointer) in [
        ("http.answer", Some(&h.answer)),
        ("http.input_tokens", h.input_tokens.as_ref()),
        ("http.output_tokens", h.output_tokens.as_ref()),
    ] {
        if let Some(p) = pointer
            && !p.is_empty()
            && !p.starts_with('/')
        {
            problems.push(
                Problem::new(at(field), format!("`{p}` is not a JSON pointer"))
                    .fix("a JSON pointer starts with `/`, e.g. \"/choices/0/message/content\""),
            );
        }
    }
    if h.input_tokens.is_some() != h.output_tokens.is_some() {
        problems.push(
            Problem::new(
                at("http.input_tokens"),
                "input_tokens and output_tokens come together",
            )
            .fix("give both pointers (the usage is then exact), or neither (tokens are estimated)"),
        );
    }
    for (name, value) in &h.headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(
                Problem::new(
                    at(&format!("http.headers.{name}")),
                    "is not a valid header name",
                )
                .fix("use letters, digits and dashes, e.g. X-Api-Key"),
            );
        }
        if value.contains(['\r', '\n']) {
            problems.push(
                Problem::new(
                    at(&format!("http.headers.{name}")),
                    "a header value cannot contain a line break",
                )
                .fix("write the value on one line"),
            );
        }
    }
}

/// The adapter of a `kind = "http"` file; the key, if any, is in its headers.
pub(super) fn build(
    path: &Path,
    cfg: &ProviderConfig,
    _key: Option<SecretString>,
    timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(HttpJson::new(path, cfg, timeout)?))
}

impl HttpJson {
    /// Build the adapter: substitute `${VAR}`s, compile the body template and check that it
    /// renders to JSON. Everything that can be wrong with the `[http]` table is found here,
    /// before anything is sent.
    pub fn new(path: &Path, cfg: &ProviderConfig, timeout: Duration) -> Result<HttpJson, Error> {
        let at = |field: &str| Location::file(path).field(field);
        let Some(opts) = &cfg.http else {
            return Err(Error::input(
                at("http"),
                "kind = \"http\" needs an [http] table",
                "add [http] with url, body and answer",
            ));
        };
        let mut headers = HeaderMap::new();
        for (name, template) in &opts.headers {
            let field = format!("http.headers.{name}");
            let (value, secret) = super::env::substitute(template, |v| std::env::var(v).ok())
                .map_err(|var| {
                    let fix_tail = "; secrets are read only from the environment";
                    super::env::unset_error(at(&field), &var, fix_tail)
                })?;
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::input(
                    at(&field),
                    "is not a valid header name",
                    "use e.g. X-Api-Key",
                )
            })?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                // Do not echo the value: it may hold a substituted secret.
                Error::input(
                    at(&field),
                    "the value (after ${VAR} substitution) is not a valid header value",
                    "a header value is one line of visible ASCII; check the variable's content",
                )
            })?;
            if !secret.is_empty() {
                value.set_sensitive(true);
            }
            for secret in &secret {
                let what = "a value read from the environment through ${…}";
                super::secrets::register(secret, at(&field), what);
            }
            headers.insert(name, value);
        }
        let body = match &opts.body {
            Some(source) => {
                let json = headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_none_or(|ct| ct.to_ascii_lowercase().contains("json"));
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Some(
                    BodyTemplate::new(source, json)
                        .map_err(|(message, fix)| Error::input(at("http.body"), message, fix))?,
                )
            }
            None => None,
        };
        let method = reqwest::Method::from_bytes(opts.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                Error::input(
                    at("http.method"),
                    format!("`{}` is not an HTTP method", opts.method),
                    "use POST (the default), GET, PUT, PATCH or DELETE",
                )
            })?;
        let http = crate::provider::http::client_builder(timeout, cfg.limits.concurrency)
            .default_headers(headers)
            .build()
            .map_err(|e| {
                Error::input(
                    at("http.url"),
                    format!("cannot build the HTTP client: {e}"),
                    "check the [http] table",
                )
            })?;
        Ok(HttpJson {
            http,
            method,
            url: opts.url.clone(),
            body,
            answer: opts.answer.clone(),
            tokens: token_pointers(opts),
            model: cfg.model.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            seed: cfg.seed,
        })
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let mut builder = self.http.request(self.method.clone(), &self.url);
        if let Some(body) = &self.body {
            let vars = Vars {
                prompt: &request.prompt,
                system: request.system.as_deref(),
                question: &request.question,
                context: &request.context.join("\n\n"),
                contexts: &request.context,
                model: &self.model,
                temperature: self.temperature,
                max_tokens: self.max_tokens,
                seed: self.seed,
            };
            let rendered = body.render(&vars).map_err(|e| {
                CallError::new(
                    ErrorKind::BadResponse,
                    format!("the [http] body template failed to render: {e}"),
                )
            })?;
            builder = builder.body(rendered);
        }
        let response = builder
            .send()
            .await
            .map_err(crate::provider::http::classify)?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let bytes = crate::provider::http::read_body(response, MAX_BODY_BYTES).await?;
        if !status.is_success() {
            return Err(status_error(
                status,
                wait,
                crate::provider::http::snippet(&bytes),
            ));
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the response is not JSON: {e}; body: {}",
                    crate::provider::http::snippet(&bytes)
                ),
            )
        })?;
        let text = extract_answer(&json, &self.answer)?;
        let usage = match &self.tokens {
            Some((input, output)) => Some(Usage {
                input: extract_count(&json, input, "input_tokens")?,
                output: extract_count(&json, output, "output_tokens")?,
            }),
            None => None,
        };
        Ok(Completion::text(text, usage))
    }
}

impl Provider for HttpJson {
    fn complete<'a>(
        &'a self,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(self.attempt(request))
    }

    fn endpoint(&self) -> Option<&str> {
        Some(&self.url)
    }
}

fn token_pointers(opts: &HttpOptions) -> Option<(String, String)> {
    Some((opts.input_tokens.clone()?, opts.output_tokens.clone()?))
}

#[derive(serde::Serialize)]
struct Vars<'a> {
    prompt: &'a str,
    system: Option<&'a str>,
    question: &'a str,
    context: &'a str,
    contexts: &'a [String],
    model: &'a str,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    seed: Option<u64>,
}

/// The request body template, with a `json` filter that writes any value as JSON
/// (`{{ prompt | json }}` → `"What is \"x\"?\n"`).
struct BodyTemplate {
    tera: tera::Tera,
}

const BODY: &str = "body";

impl BodyTemplate {
    /// Compile, check the variables, and — for a JSON body — check that it renders to JSON with
    /// values that need escaping, which catches `"{{ prompt }}"` written without `| json`.
    fn new(source: &str, json: bool) -> Result<BodyTemplate, (String, String)> {
        let mut tera = tera::Tera::new();
        tera.register_filter(
            "json",
            |value: tera::Value, _: tera::Kwargs, _: &tera::State| {
                serde_json::to_string(&value).unwrap_or_else(|_| "null".to_owned())
            },
        );
        add_text_template(&mut tera, BODY, source, VARIABLES).map_err(|e| match e {
            TemplateError::Parse(e) => (
                format!("the body template does not parse: {e}"),
                "bodies use tera syntax, e.g. body = '{\"q\": {{ prompt | json }}}'".to_owned(),
            ),
            TemplateError::Variables(e) => (e, "check the template".to_owned()),
            TemplateError::Unknown(name) => (
                format!("the body uses `{name}`, which is not a request variable"),
                format!("use only {}", VARIABLES.join(", ")),
            ),
        })?;
        let template = BodyTemplate { tera };
        if json {
            let tricky = "a \"quoted\" word,\na new line and a \\ backslash";
            let contexts = [tricky.to_owned(), tricky.to_owned()];
            for (system, temperature, max_tokens, seed) in [
                (None, None, None, None),
                (Some(tricky), Some(0.5), Some(64), Some(7)),
            ] {
                let vars = Vars {
                    prompt: tricky,
                    system,
                    question: tricky,
                    context: tricky,
                    contexts: &contexts,
                    model: "model \"name\"",
                    temperature,
                    max_tokens,
                    seed,
                };
                let rendered = template
                    .render(&vars)
                    .map_err(|e| (e, "check the template".to_owned()))?;
                if let Err(e) = serde_json::from_str::<serde_json::Value>(&rendered) {
                    return Err((
                        format!(
                            "the body is not valid JSON once a value holds quotes or line breaks ({e}); rendered: {}",
                            crate::provider::http::snippet(rendered.as_bytes())
                        ),
                        "write values with the json filter, which quotes and escapes them: {\"q\": {{ prompt | json }}} (no quotes around it); for a non-JSON body set a Content-Type header".to_owned(),
                    ));
                }
            }
        }
        Ok(template)
    }

    fn render(&self, vars: &Vars<'_>) -> Result<String, String> {
        let ctx = tera::Context::from_serialize(vars).map_err(|e| one_line(&e))?;
        self.tera.render(BODY, &ctx).map_err(|e| one_line(&e))
    }
}

/// A template error on one line, as every message here is.
fn one_line(e: &tera::Error) -> String {
    crate::text::one_line(&e.to_string())
}

fn extract_answer(json: &serde_json::Value, pointer: &str) -> Result<String, CallError> {
    match json.pointer(pointer) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        // A classifier endpoint may answer with a number or a boolean: its text is the answer.
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(v.to_string()),
        Some(other) => Err(CallError::new(
            ErrorKind::BadResponse,
            format!(
                "the answer at {pointer} (http.answer) is {}, not text",
                json_type(other)
            ),
        )),
        None => Err(CallError::new(
            ErrorKind::BadResponse,
            format!(
                "the response has nothing at {pointer} (http.answer); body: {}",
                crate::provider::http::snippet(json.to_string().as_bytes())
            ),
        )),
    }
}

fn extract_count(json: &serde_json::Value, pointer: &str, field: &str) -> Result<u64, CallError> {
    let value = json.pointer(pointer);
    value
        .and_then(|v| {
            v.as_u64().or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < u64::MAX as f64)
                    .map(|f| f as u64)
            })
        })
        .ok_or_else(|| {
            let found = value.map_or("nothing".to_owned(), |v| {
                format!(
                    "{} {}",
                    json_type(v),
                    crate::provider::http::snippet(v.to_string().as_bytes())
                )
            });
            CallError::new(
                ErrorKind::BadResponse,
                format!("expected a token count at {pointer} (http.{field}), found {found}"),
            )
        })
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(prompt: &'a str, contexts: &'a [String]) -> Vars<'a> {
        Vars {
            prompt,
            system: None,
            question: "q",
            context: "c",
            contexts,
            model: "m",
            temperature: Some(0.0),
            max_tokens: None,
            seed: None,
        }
    }

    #[test]
    fn the_json_filter_escapes_every_value() {
        let t = BodyTemplate::new(
            r#"{"q": {{ prompt | json }}, "s": {{ system | json }}, "t": {{ temperature | json }}, "n": {{ max_tokens | json }}, "c": {{ contexts | json }}}"#,
            true,
        )
        .unwrap();
        let contexts = ["one".to_owned(), "two \"2\"".to_owned()];
        let out = t.render(&vars("say \"hi\"\n\\o/", &contexts)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"q": "say \"hi\"\n\\o/", "s": null, "t": 0.0, "n": null, "c": ["one", "two \"2\""]})
        );
    }

    #[test]
    fn a_body_without_the_json_filter_is_refused_at_load() {
        let (message, fix) = BodyTemplate::new(r#"{"q": "{{ prompt }}"}"#, true)
            .err()
            .unwrap();
        assert!(message.contains("not valid JSON"), "{message}");
        assert!(fix.contains("| json"), "{fix}");
        // Unless the body is declared as something other than JSON.
        assert!(BodyTemplate::new("q={{ prompt }}", false).is_ok());
        let (message, _) = BodyTemplate::new("{{ expected }}", true).err().unwrap();
        assert!(message.contains("`expected`"), "{message}");
    }

    #[test]
    fn pointers_name_themselves_when_missing() {
        let v = serde_json::json!({"out": {"text": "hi", "n": 3, "list": []}});
        assert_eq!(extract_answer(&v, "/out/text").unwrap(), "hi");
        assert_eq!(extract_answer(&v, "/out/n").unwrap(), "3");
        let e = extract_answer(&v, "/out/missing").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadResponse);
        assert!(e.message.contains("/out/missing"), "{}", e.message);
        assert!(extract_answer(&v, "/out/list").is_err());
        assert_eq!(extract_count(&v, "/out/n", "input_tokens").unwrap(), 3);
        let e = extract_count(&v, "/out/text", "input_tokens").unwrap_err();
        assert!(
            e.message.contains("/out/text (http.input_tokens)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_shipped_example_body_compiles() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers/http-example.toml");
        let cfg = ProviderConfig::load(&path).unwrap();
        let body = cfg.http.unwrap().body.unwrap();
        BodyTemplate::new(&body, true).unwrap();
    }
}
