//! `/api/v1/mutes`: make a mute (`POST`, Alertmanager's silence body), list them (`GET`),
//! expire one (`DELETE /api/v1/mutes/ID`). Behind the web config's auth like every route.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::api::{api_error, blocking};
use crate::actions::mutes::{MuteError, Request};
use crate::docker::now_nano;

/// The largest body a mute may have.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub(super) async fn add(State(state): State<AppState>, body: Bytes) -> Response {
    if body.len() > MAX_BODY_BYTES {
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("a mute is at most {MAX_BODY_BYTES} bytes"),
        );
    }
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a mute: {e}; see docs/rules.md#mutes"),
            );
        }
    };
    // On the blocking pool: it writes the state file.
    match blocking(move || state.mutes.add(req, now_nano())).await {
        Ok(Ok(id)) => axum::Json(serde_json::json!({ "muteID": id })).into_response(),
        Ok(Err(e)) => api_error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => e,
    }
}

pub(super) async fn list(State(state): State<AppState>) -> Response {
    axum::Json(state.mutes.list(now_nano())).into_response()
}

pub(super) async fn expire(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match blocking(move || state.mutes.expire(&id, now_nano())).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e @ MuteError::NotFound(_))) => api_error(StatusCode::NOT_FOUND, &e.to_string()),
        Ok(Err(e)) => api_error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => e,
    }
}
