//! HTTP routes: `/healthz` and the static folders.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_http::services::ServeDir;

use crate::Gateway;

/// Body of `/healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub endpoint: String,
}

async fn healthz(State(gw): State<Arc<Gateway>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: crate::VERSION,
        endpoint: gw.id.to_string(),
    })
}

/// All routes of the gateway.
pub fn router(gw: Arc<Gateway>) -> Router {
    let web = ServeDir::new(&gw.config.web_dir).append_index_html_on_directories(true);
    let pkg = ServeDir::new(&gw.config.pkg_dir);
    Router::new()
        .route("/healthz", get(healthz))
        .nest_service("/pkg", pkg)
        .fallback_service(web)
        .with_state(gw)
}
