//! The models' precision/recall plots (`[models.NAME] pr_plot`, written by `lookout eval
//! --plot`) for the tuning view.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::{ApiError, ErrorBody};
use crate::ServerState;

/// A model with a configured PR plot.
#[derive(Serialize)]
struct PlotRef {
    /// `[models.NAME]`.
    model: String,
    /// Where the PNG is served.
    url: String,
}

/// The models whose PR plot is configured: `{"plots": [{"model", "url"}]}`.
#[utoipa::path(
    get,
    path = "/api/tuning/pr",
    tag = "tuning",
    responses(
        (status = 200, description = "The models with a precision/recall plot (`[models.NAME] pr_plot`).", body = serde_json::Value, content_type = "application/json"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn pr_plots(State(s): State<ServerState>) -> Response {
    let plots: Vec<PlotRef> = s
        .config()
        .models
        .iter()
        .filter(|(_, m)| m.pr_plot.is_some())
        .map(|(name, _)| PlotRef {
            model: name.clone(),
            url: format!("/api/tuning/pr/{name}"),
        })
        .collect();
    axum::Json(serde_json::json!({ "plots": plots })).into_response()
}

/// A model's precision/recall plot as PNG (axes, a curve per class, the operating point).
#[utoipa::path(
    get,
    path = "/api/tuning/pr/{model}",
    tag = "tuning",
    params(("model" = String, Path, description = "Model name (`[models.NAME]`).")),
    responses(
        (status = 200, description = "The plot, as PNG.", body = Vec<u8>, content_type = "image/png"),
        (status = 404, description = "No such model, no `pr_plot` for it, or its file is missing.", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn pr_plot(
    State(s): State<ServerState>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let cfg = s.config();
    let Some(path) = cfg
        .models
        .get(&model)
        .and_then(|m| m.pr_plot.as_ref())
        .map(|p| cfg.resolve_path(p.value()))
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("model {model:?} has no pr_plot"),
        ));
    };
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "gone",
            format!("the PR plot of model {model:?} cannot be read: {e}"),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response())
}
