//! GraphiQL at `/graphiql`, served whole from our own origin: the page and every file it loads are
//! embedded in the binary, so it works with no internet, and its Content-Security-Policy lets it load
//! and talk to our own origin only, so neither a CDN nor an injected script ever sees the bearer
//! tokens admins paste into it.
//!
//! The third-party files (React, ReactDOM, GraphiQL) are pinned npm releases in
//! `assets/graphiql/vendor/`, fetched by `scripts/update-graphiql-assets`, whose README there lists
//! each file's package, path and sha256. `assets/graphiql/guestpass-graphiql.js` starts GraphiQL.

use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// One embedded file, served at `/graphiql/assets/<hash>/<name>`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// In the order the page loads them: the scripts' globals are each used by the next.
const ASSETS: &[Asset] = &[
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        body: include_bytes!("../../assets/graphiql/vendor/graphiql.min.css"),
    },
    Asset {
        name: "guestpass-graphiql.css",
        content_type: CSS,
        body: include_bytes!("../../assets/graphiql/guestpass-graphiql.css"),
    },
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        body: include_bytes!("../../assets/graphiql/vendor/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        body: include_bytes!("../../assets/graphiql/vendor/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        body: include_bytes!("../../assets/graphiql/vendor/graphiql.min.js"),
    },
    Asset {
        name: "guestpass-graphiql.js",
        content_type: JS,
        body: include_bytes!("../../assets/graphiql/guestpass-graphiql.js"),
    },
];

/// Each asset's content hash, in `ASSETS`' order. It is part of the asset's URL, so the assets can be
/// cached for a year without revalidation and a release that changes one still reaches every browser.
static HASHES: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| hex::encode(&Sha256::digest(a.body)[..8]))
        .collect()
});

/// The script that starts GraphiQL; it hands the response's style nonce on.
const START_SCRIPT: &str = "guestpass-graphiql.js";

/// Only our own origin, for everything. Styles also with the response's nonce: GraphiQL's dialogs
/// add a `<style>` element (react-remove-scroll) that carries the nonce the start script passes on;
/// without it they still work, but every dialog would log a CSP violation. No `'unsafe-inline'`
/// anywhere and no `'unsafe-eval'`: GraphiQL needs neither. Fonts and a few icons come as `data:`
/// URLs inside GraphiQL's stylesheet.
fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; font-src 'self' data:; object-src 'none'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
}

/// The page: the stylesheets, then the scripts, all from `/graphiql/assets/`; no inline code.
pub async fn page(state: web::Data<AppState>) -> HttpResponse {
    if !state.config.graphiql {
        return super::pages::not_found().await;
    }
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let mut head = String::new();
    let mut scripts = String::new();
    for (asset, hash) in ASSETS.iter().zip(HASHES.iter()) {
        let url = format!("/graphiql/assets/{hash}/{}", asset.name);
        if asset.content_type == CSS {
            head.push_str(&format!("<link rel=\"stylesheet\" href=\"{url}\">\n"));
        } else if asset.name == START_SCRIPT {
            scripts.push_str(&format!(
                "<script src=\"{url}\" nonce=\"{nonce}\"></script>\n"
            ));
        } else {
            scripts.push_str(&format!("<script src=\"{url}\"></script>\n"));
        }
    }
    // An empty `data:` icon: the browser would otherwise ask for /favicon.ico and log the 404.
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Guestpass GraphiQL</title>\n<link rel=\"icon\" href=\"data:,\">\n{head}</head>\n\
         <body>\n<div id=\"graphiql\">Loading GraphiQL…</div>\n\
         <noscript>GraphiQL needs JavaScript. The API itself is at /graphql.</noscript>\n{scripts}</body>\n</html>\n"
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(&nonce),
        ))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // A nonce is worth something only while no two responses share it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// An embedded asset, when both its hash and its name are current (an old hash is a 404, never
/// today's content cached for a year under yesterday's URL).
pub async fn asset(state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (hash, name) = path.into_inner();
    let found = ASSETS
        .iter()
        .zip(HASHES.iter())
        .find(|(a, h)| a.name == name && **h == hash);
    let Some((asset, _)) = found.filter(|_| state.config.graphiql) else {
        return super::pages::not_found().await;
    };
    HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Our scripts are for our own page: no other site may load them.
        .insert_header(("cross-origin-resource-policy", "same-origin"))
        .body(asset.body)
}
