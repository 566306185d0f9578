//! HTTP identity API (axum). Mounted by the output/service side next to `/api/v1/counts`.
//!
//! - `GET  /api/v1/individuals[?tank=T]` — all individuals (merged ones included).
//! - `GET  /api/v1/individuals/{tank}/merges` — merge history.
//! - `POST /api/v1/individuals/{tank}/{id}/rename` — body `{"name": "Nemo"}` (`null` clears).
//! - `POST /api/v1/individuals/{tank}/merge` — body `{"from": "fish-004", "into": "fish-002"}`.
//! - `POST /api/v1/individuals/{tank}/merges/{merge}/undo` — undo merge number `merge`.
//!
//! Mutating calls need `Authorization: Bearer <identity.api_token>`; without a configured token
//! they are refused (403). Errors are JSON `{"error": "..."}`. Every change is saved at once.
//! Must never block on the frame path: handlers only take the tank's lock briefly.

// Handlers return the ready error `Response` early (`?`), the usual axum pattern; boxing it
// would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{IdentifyError, IdentityApi};

struct HttpState {
    apis: HashMap<String, IdentityApi>,
    token: Option<String>,
}

type Shared = Arc<HttpState>;

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

fn from_error(e: IdentifyError) -> Response {
    let status = match &e {
        IdentifyError::NotFound(_) => StatusCode::NOT_FOUND,
        IdentifyError::Conflict(_) => StatusCode::CONFLICT,
        IdentifyError::Request(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    err(status, e.to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(state: &HttpState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(token) = &state.token else {
        return Err(err(
            StatusCode::FORBIDDEN,
            "changes are disabled: set identity.api_token in the config to allow them",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        _ => {
            let mut r = err(
                StatusCode::UNAUTHORIZED,
                "missing or wrong token: send `Authorization: Bearer <identity.api_token>`",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            Err(r)
        }
    }
}

fn tank<'a>(state: &'a HttpState, name: &str) -> Result<&'a IdentityApi, Response> {
    state.apis.get(name).ok_or_else(|| {
        let mut known: Vec<&str> = state.apis.keys().map(String::as_str).collect();
        known.sort();
        err(
            StatusCode::NOT_FOUND,
            format!("no tank `{name}` (tanks: {})", known.join(", ")),
        )
    })
}

#[derive(Deserialize)]
struct ListQuery {
    tank: Option<String>,
}

async fn list(State(s): State<Shared>, Query(q): Query<ListQuery>) -> Response {
    let mut out = Vec::new();
    let mut names: Vec<&String> = s.apis.keys().collect();
    names.sort();
    for name in names {
        if q.tank.as_ref().is_some_and(|t| t != name) {
            continue;
        }
        out.extend(s.apis[name].list());
    }
    if let Some(t) = &q.tank
        && !s.apis.contains_key(t)
    {
        return err(StatusCode::NOT_FOUND, format!("no tank `{t}`"));
    }
    Json(serde_json::json!({ "individuals": out })).into_response()
}

async fn merges(State(s): State<Shared>, Path(t): Path<String>) -> Response {
    match tank(&s, &t) {
        Ok(api) => Json(serde_json::json!({ "merges": api.merges() })).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    name: Option<String>,
}

/// A mutating call's JSON body, or 400 saying what it must look like (`shape`).
fn json_body<B>(
    body: Result<Json<B>, axum::extract::rejection::JsonRejection>,
    shape: &str,
) -> Result<B, Response> {
    body.map(|Json(b)| b).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("body must be {shape}: {e}"),
        )
    })
}

async fn rename(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((t, id)): Path<(String, String)>,
    body: Result<Json<RenameBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let run = || -> Result<Response, Response> {
        authorize(&s, &headers)?;
        let body = json_body(body, "{\"name\": \"...\"}")?;
        let api = tank(&s, &t)?;
        Ok(match api.rename(&id, body.name) {
            Ok(()) => {
                let info = api.list().into_iter().find(|i| i.id == id);
                Json(serde_json::json!({ "individual": info })).into_response()
            }
            Err(e) => from_error(e),
        })
    };
    run().unwrap_or_else(|r| r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    from: String,
    into: String,
}

async fn merge(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(t): Path<String>,
    body: Result<Json<MergeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let run = || -> Result<Response, Response> {
        authorize(&s, &headers)?;
        let body = json_body(body, "{\"from\": ID, \"into\": ID}")?;
        let api = tank(&s, &t)?;
        Ok(match api.merge(&body.from, &body.into) {
            Ok(m) => Json(serde_json::json!({ "merge": m })).into_response(),
            Err(e) => from_error(e),
        })
    };
    run().unwrap_or_else(|r| r)
}

async fn unmerge(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((t, m)): Path<(String, u64)>,
) -> Response {
    let run = || -> Result<Response, Response> {
        authorize(&s, &headers)?;
        let api = tank(&s, &t)?;
        Ok(match api.unmerge(m) {
            Ok(m) => Json(serde_json::json!({ "merge": m })).into_response(),
            Err(e) => from_error(e),
        })
    };
    run().unwrap_or_else(|r| r)
}

/// The identity routes for these tanks. `token`: `identity.api_token` (mutations refused when
/// `None`).
pub fn router(apis: Vec<IdentityApi>, token: Option<String>) -> Router {
    let state: Shared = Arc::new(HttpState {
        apis: apis
            .into_iter()
            .map(|a| (a.tank().to_string(), a))
            .collect(),
        token: token.filter(|t| !t.is_empty()),
    });
    Router::new()
        .route("/api/v1/individuals", get(list))
        .route("/api/v1/individuals/{tank}/merges", get(merges))
        .route("/api/v1/individuals/{tank}/merge", post(merge))
        .route(
            "/api/v1/individuals/{tank}/merges/{merge}/undo",
            post(unmerge),
        )
        .route("/api/v1/individuals/{tank}/{id}/rename", post(rename))
        .with_state(state)
}
